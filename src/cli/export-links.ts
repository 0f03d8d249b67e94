// `npm run cli -- export-links <rollout id> [--scope S] [--app ID] [--q TEXT] [--out FILE]`:
// the dashboard's CSV export from the command line, for large rollouts or scripted mail-outs.
// Same filter as the rollout page; rows lacking an open link get one (audited as the CLI).
import { type WriteStream, createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { once } from 'node:events'
import { systemClock } from '../clock.js'
import { type Runtime, openRuntime } from '../runtime.js'
import { parseOptions } from './args.js'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { isDomainError } from '../errors.js'
import { Id, LackingFilterFields, Text } from '../http/schemas.js'
import { lackingFilter } from '../rollouts/lacking.js'
import { exportLinksCsv, linkContextFrom } from '../links/links.js'

export const exportLinksUsage =
  'Usage: npm run cli -- export-links <rollout id> [--scope SCOPE] [--app APP_ID] [--q SEARCH] [--out FILE]   (CSV to stdout without --out)'

const ExportInput = Type.Object({ id: Id, ...LackingFilterFields, out: Type.Optional(Text(4096)) })

const EXPORT_OPTIONS = {
  scope: { type: 'string' },
  app: { type: 'string' },
  q: { type: 'string' },
  out: { type: 'string' },
} as const

export async function exportLinksCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
): Promise<number> {
  const parsed = parseOptions(args, EXPORT_OPTIONS, exportLinksUsage)
  if (!parsed) return 2
  const [id, ...extra] = parsed.positionals
  // The same rules as the dashboard's filter (src/http/schemas.ts), checked here for the terminal.
  const input = Value.Convert(ExportInput, { id, ...parsed.values })
  if (!id || extra.length || !Value.Check(ExportInput, input)) {
    const problem = [...Value.Errors(ExportInput, input)][0]
    console.error(
      `${problem ? `${problem.instancePath.slice(1) || 'input'} ${problem.message}\n` : ''}${exportLinksUsage}`,
    )
    return 2
  }
  const { config, db } = await open()
  // The file is created with the first rows: a refusal (unknown rollout, bad filter) leaves none,
  // and a failure half-way removes it, so no partial file looks like an export.
  const file = parsed.values.out
  const sink: { stream: WriteStream | null; error: Error | null } = { stream: null, error: null }
  const target = (): NodeJS.WritableStream => {
    if (!file) return process.stdout
    if (!sink.stream) {
      sink.stream = createWriteStream(file, { mode: 0o600 })
      sink.stream.on('error', (err) => {
        sink.error = err
      })
    }
    return sink.stream
  }
  try {
    const filter = lackingFilter(input)
    const write = async (chunk: string) => {
      const out = target()
      if (!out.write(chunk)) await once(out, 'drain')
      if (sink.error) throw sink.error
    }
    const result = await exportLinksCsv(
      db,
      linkContextFrom(config, systemClock),
      { rolloutId: input.id, filter, issuedBy: 'cli' },
      write,
    )
    if (file) {
      const out = target()
      out.end()
      await once(out, 'finish')
    }
    console.error(
      `Exported ${result.matched} users (${result.issued} new links, ${result.reused} reused)${file ? ` to ${file}` : ''}.`,
    )
    return 0
  } catch (err) {
    if (sink.stream && file) {
      sink.stream.destroy()
      await rm(file, { force: true })
    }
    if (isDomainError(err)) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
