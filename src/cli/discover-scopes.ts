// `npm run cli -- discover-scopes [--limit N]`: scope discovery in the foreground (src/README.md,
// "Imports"), with the same shared budget as the background job, progress on stderr; exits 0 when
// no grant is left to probe (or N grants were handled), 1 when discovery is paused, 2 on bad options.
import { parseArgs } from 'node:util'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { systemClock } from '../clock.js'
import { createDeps } from '../deps.js'
import { discoveryStatus, runDiscovery } from '../imports/discovery.js'
import type { Logger } from '../log.js'
import { openRuntime, type Runtime } from '../runtime.js'

export const discoverScopesUsage = 'Usage: npm run cli -- discover-scopes [--limit N]'

const Limit = Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 })

export async function discoverScopesCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
  io: { stdout: { write(s: string): unknown }; stderr: { write(s: string): unknown } } = process,
): Promise<number> {
  let limit: number | undefined
  try {
    const { values, positionals } = parseArgs({ args, options: { limit: { type: 'string' } }, allowPositionals: true })
    if (positionals.length) throw new Error(`Unexpected argument "${positionals[0]}".`)
    if (values.limit !== undefined) {
      const n = Value.Convert(Limit, values.limit)
      if (!Value.Check(Limit, n)) throw new Error('--limit must be a whole number from 1 to 2147483647.')
      limit = n as number
    }
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n${discoverScopesUsage}\n`)
    return 2
  }
  const { config, db } = await open()
  const log: Logger = {
    info: () => {},
    warn: (obj, msg) => io.stderr.write(`warning: ${msg} ${JSON.stringify(obj)}\n`),
    error: (obj, msg) => io.stderr.write(`error: ${msg} ${JSON.stringify(obj)}\n`),
  }
  const deps = { ...createDeps({ config, db, clock: systemClock }), log }
  try {
    const before = await discoveryStatus(deps)
    if (before.paused) {
      io.stderr.write('Scope discovery is paused (resume it on the Imports page).\n')
      return 1
    }
    const total = limit === undefined ? before.pending : Math.min(limit, before.pending)
    io.stderr.write(
      `${before.pending} grants to probe at ${config.discoveryRate.perMinute} requests/minute per client id; about ${Math.ceil(before.estimateSeconds / 60)} min.\n`,
    )
    const started = Date.now()
    const run = await runDiscovery(deps, {
      ...(limit !== undefined ? { limit } : {}),
      onGrant: (r) => {
        const n = r.probed + r.broken + r.retry
        io.stderr.write(
          `[${n}/${total}] ${r.probed} probed, ${r.broken} broken, ${r.retry} to retry (${((Date.now() - started) / 1000).toFixed(0)} s)\n`,
        )
      },
    })
    io.stdout.write(`${run.probed} grants probed, ${run.broken} broken, ${run.retry} to retry later.\n`)
    if (run.paused) {
      io.stderr.write('Stopped: scope discovery was paused.\n')
      return 1
    }
    return 0
  } finally {
    await db.destroy()
  }
}
