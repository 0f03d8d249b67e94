// A second Scope Ledger process for the two-process refresh test: opens the same database file
// and calls withAccessToken, started by test/lifecycle/two-process.test.ts (not a test itself).
// argv[2]: JSON {env, clockOffsetMs, grantId, calls}. Prints "ready", waits for "go" on stdin,
// prints one JSON line with the results.
import { createInterface } from 'node:readline'
import { listIssuers } from '../../src/carta/api.js'
import { loadConfig } from '../../src/config.js'
import { openDatabase } from '../../src/db/index.js'
import { withAccessToken } from '../../src/grants/access.js'
import { createDeps } from '../../src/deps.js'

const input = JSON.parse(process.argv[2]!) as {
  env: Record<string, string>
  clockOffsetMs: number
  grantId: number
  calls: number
}
const config = loadConfig(input.env)
const db = await openDatabase(config.database)
const deps = createDeps({ config, db, clock: { now: () => Date.now() + input.clockOffsetMs } })
process.stdout.write('ready\n')
const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (line.trim() !== 'go') continue
  const results = await Promise.allSettled(
    Array.from({ length: input.calls }, () =>
      withAccessToken(deps, input.grantId, (token, ctx) => listIssuers(ctx.app, token)),
    ),
  )
  process.stdout.write(
    `${JSON.stringify({
      ok: results.filter((r) => r.status === 'fulfilled').length,
      errors: results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    })}\n`,
  )
  break
}
await db.destroy()
process.exit(0)
