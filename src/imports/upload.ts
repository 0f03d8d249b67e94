// Imports uploaded from the dashboard (src/README.md, "Imports"). The upload is streamed to a spool
// file first, then imported from it: the whole body arrives at network speed (within the server's
// request timeout, however long the import then takes), and an upload cut off halfway leaves no run
// and no row. The spool holds tokens, so it is encrypted (AES-256-GCM) with a key that exists only in
// this process's memory for this one upload: a file a crash leaves behind is unreadable, and is
// deleted by the next upload. Rejected lines go to `import_rejects` (keyed by the run's
// rejects_file), so any instance can serve them as CSV; a rejection never carries a token.
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setImmediate } from 'node:timers/promises'
import type { Db } from '../db/index.js'
import { DomainError } from '../errors.js'
import { formatFromName, type ImportFormat, type Rejection } from './parse.js'

/** Spool files older than this were left by a crash (their key died with the process). */
const STALE_SPOOL_MS = 24 * 3600_000
/** Bytes kept from the start of an upload to tell a text file from anything else. */
const HEAD_BYTES = 4096
/**
 * Bytes read from the spool at a time. The import's batches are 500 lines (at least ~20 KB), so a
 * smaller read lands between every two batches, where the source yields (see `open`).
 */
const READ_BYTES = 16 * 1024
/** Rejections written per INSERT. */
const REJECTS_BATCH = 500
/** The prefix of an uploaded run's rejects_file: its rejections are rows, not a file. */
const REJECTS_PREFIX = 'upload:'

export interface SpooledUpload {
  bytes: number
  /** The first bytes, for the checks before importing. */
  head: Buffer
  /**
   * The upload's bytes again, decrypted (checked against the GCM tag at the end). It yields to the
   * event loop after every read: on SQLite the app has one connection and an import that never
   * pauses would take it again the moment each batch commits, so every page would wait for the
   * whole import; this way waiting requests get the connection between batches.
   */
  open(): AsyncIterable<Buffer>
  remove(): Promise<void>
}

/**
 * Streams `source` into an encrypted spool file under `dir`. Throws upload_too_large past
 * `maxBytes`; on any failure (the client went away, the disk is full) the file is removed and
 * the error rethrown.
 */
export async function spoolUpload(source: Readable, dir: string, maxBytes: number): Promise<SpooledUpload> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, `${randomUUID()}.spool`)
  const key = randomBytes(32)
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  let bytes = 0
  const heads: Buffer[] = []
  let headSize = 0
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length
      if (bytes > maxBytes) return done(new DomainError('import.upload_too_large', 'upload too large', { maxBytes }))
      if (headSize < HEAD_BYTES) {
        heads.push(chunk.subarray(0, HEAD_BYTES - headSize))
        headSize += Math.min(chunk.length, HEAD_BYTES - headSize)
      }
      done(null, chunk)
    },
  })
  const remove = () => rm(path, { force: true })
  try {
    await pipeline(source, count, cipher, createWriteStream(path, { mode: 0o600 }))
  } catch (err) {
    await remove()
    throw err
  }
  const tag = cipher.getAuthTag()
  return {
    bytes,
    head: Buffer.concat(heads),
    open: async function* () {
      const decipher = createDecipheriv('aes-256-gcm', key, iv)
      decipher.setAuthTag(tag)
      const plain = createReadStream(path, { highWaterMark: READ_BYTES }).pipe(decipher)
      for await (const chunk of plain) {
        yield chunk as Buffer
        await setImmediate()
      }
    },
    remove,
  }
}

/** Removes spool files a crashed process left in `dir` (unreadable without their key). */
export async function sweepStaleSpools(dir: string, now: number): Promise<void> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  for (const name of names.filter((n) => n.endsWith('.spool'))) {
    const file = join(dir, name)
    const info = await stat(file).catch(() => null)
    if (info && now - info.mtimeMs > STALE_SPOOL_MS) await rm(file, { force: true })
  }
}

/**
 * The checks before anything is imported: a file was chosen, it has bytes, it is text, and its
 * format is chosen or follows from its name (.jsonl / .ndjson / .json, .csv).
 */
export function uploadFormat(fileName: string, chosen: ImportFormat | null, upload: SpooledUpload): ImportFormat {
  const invalid = (reason: string) => new DomainError('import.upload_invalid', reason, { reason })
  if (upload.bytes === 0) throw invalid(`"${fileName}" is empty.`)
  // JSON Lines and CSV are UTF-8 text: a NUL byte means a spreadsheet, an archive or an image.
  if (upload.head.includes(0)) throw invalid(`"${fileName}" is not a text file: upload JSON Lines or CSV.`)
  const format = chosen ?? formatFromName(fileName)
  if (!format)
    throw invalid(
      `Cannot tell the format of "${fileName}" from its name: choose JSON Lines or CSV, or upload a .jsonl or .csv file.`,
    )
  return format
}

export function newRejectsKey(): string {
  return `${REJECTS_PREFIX}${randomUUID()}`
}

/** True when a run's rejects_file names rows in import_rejects (an upload), not a file. */
export function isStoredRejects(rejectsFile: string | null): rejectsFile is string {
  return rejectsFile?.startsWith(REJECTS_PREFIX) === true
}

/** Collects rejections and writes them in batches; `flush()` writes the rest. */
export function rejectsWriter(db: Db, key: string) {
  let pending: Rejection[] = []
  const flush = async () => {
    const rows = pending
    pending = []
    if (!rows.length) return
    await db
      .insertInto('import_rejects')
      .values(
        rows.map((r) => ({
          rejects_key: key,
          line: r.line,
          reason: r.reason.slice(0, 1000),
          carta_user_id: r.cartaUserId ?? null,
          client_id: r.clientId ?? null,
        })),
      )
      .onConflict((oc) => oc.columns(['rejects_key', 'line']).doNothing())
      .execute()
  }
  return {
    add: async (rejection: Rejection) => {
      pending.push(rejection)
      if (pending.length >= REJECTS_BATCH) await flush()
    },
    flush,
  }
}

/** A run's stored rejections in line order, a page at a time (keyset on the line number). */
export async function* storedRejects(db: Db, key: string, pageSize = 1000) {
  let after = 0
  for (;;) {
    const page = await db
      .selectFrom('import_rejects')
      .select(['line', 'reason', 'carta_user_id', 'client_id'])
      .where('rejects_key', '=', key)
      .where('line', '>', after)
      .orderBy('line')
      .limit(pageSize)
      .execute()
    yield* page
    if (page.length < pageSize) return
    after = page[page.length - 1]!.line
  }
}

/** One import run (the run's page), or import.run_not_found. */
export async function findImportRun(db: Db, runId: number) {
  const run = await db.selectFrom('import_runs').selectAll().where('id', '=', runId).executeTakeFirst()
  if (!run) throw new DomainError('import.run_not_found', `no import run ${runId}`, { runId })
  return run
}

/** The run an upload started, found by the rejects key it was given (null until its first batch). */
export async function findRunByRejectsKey(db: Db, key: string) {
  return (await db.selectFrom('import_runs').select(['id']).where('rejects_file', '=', key).executeTakeFirst()) ?? null
}
