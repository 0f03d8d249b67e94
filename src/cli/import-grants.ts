// `npm run cli -- import-grants <file> [--format jsonl|csv] [--dry-run] [--rejects FILE]`: records the
// grants an integrator already holds (src/README.md, "Imports"). Exit status: 0 every row imported
// or unchanged, 1 some rows rejected, 2 bad options or a file that cannot be read.
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { open as openFile, stat } from 'node:fs/promises'
import { once } from 'node:events'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { systemClock } from '../clock.js'
import { csvLine } from '../csv.js'
import { tuneForBulkWrites } from '../db/dialect.js'
import { createDeps } from '../deps.js'
import { importGrants, type ImportProgress } from '../imports/import.js'
import { formatFromName, type ImportFormat, ImportFileError, type Rejection } from '../imports/parse.js'
import type { Logger } from '../log.js'
import { openRuntime, type Runtime } from '../runtime.js'

export const importGrantsUsage =
  'Usage: npm run cli -- import-grants <file> [--format jsonl|csv] [--dry-run] [--rejects FILE] [--batch-size N]'

/** Rows per transaction at most: a bigger batch holds the write lock longer for little gain. */
const MAX_BATCH_SIZE = 20_000

export interface ImportCliIo {
  stderr: { write(s: string): unknown; isTTY?: boolean }
  stdout: { write(s: string): unknown }
  /** Milliseconds between progress lines when stderr is not a terminal. */
  progressEveryMs?: number
}

const defaultIo: ImportCliIo = { stderr: process.stderr, stdout: process.stdout }

export async function importGrantsCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
  io: ImportCliIo = defaultIo,
): Promise<number> {
  const fail = (message: string) => {
    io.stderr.write(`${message}\n${importGrantsUsage}\n`)
    return 2
  }
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(args)
  } catch (err) {
    return fail((err as Error).message)
  }
  const [file, ...extra] = parsed.positionals
  if (!file || extra.length) return fail(file ? `Unexpected argument "${extra[0]}".` : 'No file given.')
  const given = parsed.values.format
  if (given !== undefined && given !== 'jsonl' && given !== 'csv') return fail('--format must be jsonl or csv.')
  const format: ImportFormat | null = (given as ImportFormat | undefined) ?? formatFromName(file)
  if (!format) return fail(`Cannot tell the format of "${file}" from its name: give --format jsonl or --format csv.`)
  const rejectsPath = parsed.values.rejects
  if (rejectsPath === '') return fail('--rejects needs a file name.')
  const batchText = parsed.values['batch-size']
  const batchSize = batchText === undefined ? undefined : Number(batchText)
  if (batchSize !== undefined && !(/^\d+$/.test(batchText!) && batchSize >= 1 && batchSize <= MAX_BATCH_SIZE))
    return fail(`--batch-size must be a whole number from 1 to ${MAX_BATCH_SIZE}.`)

  // Unreadable file: exit 2 before anything is written.
  let size: number
  try {
    const info = await stat(file)
    if (!info.isFile()) return fail(`"${file}" is not a file.`)
    size = info.size
    await (await openFile(file, 'r')).close()
  } catch (err) {
    return fail(`Cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`)
  }
  let rejects: WriteStream | null = null
  if (rejectsPath) {
    try {
      rejects = createWriteStream(rejectsPath, { mode: 0o600 })
      await once(rejects, 'open')
    } catch (err) {
      return fail(`Cannot write "${rejectsPath}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`)
    }
    rejects.write(csvLine(['line', 'reason', 'carta_user_id', 'client_id']))
  }

  const { config, db } = await open()
  await tuneForBulkWrites(db)
  const deps = createDeps({ config, db, clock: systemClock })
  // Only warnings reach the terminal; the summary says the rest.
  const log: Logger = {
    info: () => {},
    warn: (obj, msg) => io.stderr.write(`warning: ${msg} ${JSON.stringify(obj)}\n`),
    error: () => {},
  }
  const started = Date.now()
  const tty = io.stderr.isTTY === true
  let lastLine = started
  const shown: Rejection[] = []
  const showProgress = (p: ImportProgress) => {
    const pct = size > 0 ? Math.min(100, Math.floor((p.bytes / size) * 100)) : 100
    const secs = ((Date.now() - started) / 1000).toFixed(1)
    const counts = `${p.created} created, ${p.superseded} superseded, ${p.unchanged} unchanged, ${p.rejected} rejected`
    if (tty) {
      const width = 30
      const filled = Math.round((pct / 100) * width)
      io.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% line ${p.lines} · ${counts} · ${secs} s`,
      )
    } else if (Date.now() - lastLine >= (io.progressEveryMs ?? 5000)) {
      lastLine = Date.now()
      io.stderr.write(`progress: ${pct}% (line ${p.lines}): ${counts} (${secs} s)\n`)
    }
  }
  try {
    const result = await importGrants({ ...deps, log }, createReadStream(file, { highWaterMark: 256 * 1024 }), {
      format,
      fileName: basename(file),
      actor: 'cli',
      dryRun: parsed.values['dry-run'] === true,
      ...(batchSize !== undefined ? { batchSize } : {}),
      rejectsFile: rejectsPath ?? null,
      onRejection: async (r) => {
        if (shown.length < 20) shown.push(r)
        if (rejects && !rejects.write(csvLine([r.line, r.reason, r.cartaUserId, r.clientId])))
          await once(rejects, 'drain')
      },
      onProgress: showProgress,
    })
    if (tty) io.stderr.write('\n')
    if (result.rejected > 0 && !rejects) {
      for (const r of shown) io.stderr.write(`line ${r.line}: ${r.reason}\n`)
      if (result.rejected > shown.length)
        io.stderr.write(`… and ${result.rejected - shown.length} more (use --rejects FILE)\n`)
    }
    io.stdout.write(
      `${parsed.values['dry-run'] ? 'Dry run (nothing written): ' : ''}${result.created} created, ${result.superseded} superseded, ${result.unchanged} unchanged, ${result.rejected} rejected in ${(result.ms / 1000).toFixed(1)} s${result.runId !== null ? ` (import run ${result.runId})` : ''}.\n`,
    )
    if (rejects && result.rejected > 0) io.stdout.write(`Rejected rows: ${rejectsPath}\n`)
    return result.rejected > 0 ? 1 : 0
  } catch (err) {
    if (tty) io.stderr.write('\n')
    if (err instanceof ImportFileError) {
      io.stderr.write(`${err.message}\n`)
      return 2
    }
    throw err
  } finally {
    if (rejects) {
      rejects.end()
      await once(rejects, 'close')
    }
    await db.destroy()
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      'dry-run': { type: 'boolean' },
      rejects: { type: 'string' },
      'batch-size': { type: 'string' },
    },
  })
}
