// Importing the grants an integrator already holds (src/README.md, "Imports"). The file is read as a
// stream; valid rows are recorded in batches, each batch one transaction that also moves the run's
// counters, so a kill at any moment leaves every row fully recorded or not at all, and the run's
// counters exact. Each grant goes through changeGrant (src/grants/change.ts): the supersede rule,
// the audit event and rollout membership come out as for a connection. Importing the same row
// again changes nothing (the row's fingerprint is on the grant), so re-running finishes the job.
import { recordAudit } from '../audit/events.js'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'
import type { Db } from '../db/index.js'
import { changeGrant } from '../grants/change.js'
import type { TokenCipher } from '../grants/token-cipher.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
import type { Transaction } from 'kysely'
import {
  csvColumns,
  type ImportFormat,
  type ImportRow,
  type Parsed,
  parseCsvLine,
  parseJsonLine,
  type Rejection,
  readLines,
  rowFingerprint,
  type RowRules,
} from './parse.js'

export interface ImportCounts {
  created: number
  superseded: number
  unchanged: number
  rejected: number
}

export interface ImportProgress extends ImportCounts {
  bytes: number
  lines: number
}

export interface ImportOptions {
  format: ImportFormat
  fileName: string
  /** "operator:<username>" or "cli". */
  actor: string
  dryRun?: boolean
  /** Rows per transaction. */
  batchSize?: number
  onRejection?: (rejection: Rejection) => void | Promise<void>
  onProgress?: (progress: ImportProgress) => void
  /** Where rejections were written, recorded on the run. */
  rejectsFile?: string | null
}

export interface ImportResult extends ImportCounts {
  /** Null on a dry run (nothing written). */
  runId: number | null
  lines: number
  ms: number
}

export interface ImportDeps {
  db: Db
  cipher: TokenCipher
  clock: Clock
  log: Logger
}

type Trx = Transaction<Database>
type Outcome = 'created' | 'superseded' | 'unchanged'

class DryRunRollback extends Error {}

/** Imports `source` (the file's bytes); throws ImportFileError when the file cannot be read at all. */
export async function importGrants(
  deps: ImportDeps,
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  options: ImportOptions,
): Promise<ImportResult> {
  const { db, clock, log } = deps
  const started = clock.now()
  const batchSize = options.batchSize ?? 500
  const apps = await db.selectFrom('oauth_apps').select(['id', 'key', 'client_id', 'scopes']).execute()
  const byClient = new Map(
    apps.map((a) => [a.client_id, { id: a.id, key: a.key, scopes: new Set(parseScopes(a.scopes)) }]),
  )
  const rules: RowRules = { apps: byClient, now: started }

  let runId: number | null = null
  // The run's row is written with the first batch: a file refused at its header leaves none.
  const ensureRun = async () => {
    if (options.dryRun || runId !== null) return
    const run = await db
      .insertInto('import_runs')
      .values({
        actor: options.actor,
        file_name: options.fileName,
        format: options.format,
        status: 'running',
        started_at: started,
        heartbeat_at: started,
        finished_at: null,
        rejects_file: options.rejectsFile ?? null,
        error: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    runId = run.id
  }
  log.info({ file: options.fileName, format: options.format, dryRun: !!options.dryRun }, 'import started')

  const counts: ImportCounts = { created: 0, superseded: 0, unchanged: 0, rejected: 0 }
  const progress = { bytes: 0, lines: 0 }
  // The first line of a file naming each user: a later line for the same user is refused.
  const seen = new Map<string, number>()
  let pendingRejected = 0
  let batch: ImportRow[] = []
  let columns: ReturnType<typeof csvColumns> | null = null

  const reject = async (rejection: Rejection) => {
    counts.rejected += 1
    pendingRejected += 1
    await options.onRejection?.(rejection)
  }
  const flush = async () => {
    const rows = batch
    const rejected = pendingRejected
    batch = []
    pendingRejected = 0
    await ensureRun()
    const outcomes = await recordBatch(deps, rows, rejected, runId, options)
    for (const o of outcomes) counts[o] += 1
    options.onProgress?.({ ...counts, ...progress })
  }

  try {
    for await (const raw of readLines(source, (n) => {
      progress.bytes += n
    })) {
      progress.lines = raw.line
      let parsed: Parsed
      if (raw.text === null) {
        parsed = { rejection: { line: raw.line, reason: raw.problem ?? 'the line cannot be read' } }
      } else if (options.format === 'csv') {
        if (columns === null) {
          if (raw.text.trim() === '') continue
          columns = csvColumns(raw.text)
          continue
        }
        parsed = parseCsvLine(raw.line, raw.text, columns, rules)
      } else {
        parsed = parseJsonLine(raw.line, raw.text, rules)
      }
      if ('skip' in parsed) continue
      if ('rejection' in parsed) {
        await reject(parsed.rejection)
        continue
      }
      const { row } = parsed
      const first = seen.get(row.cartaUserId)
      if (first !== undefined) {
        await reject({
          line: row.line,
          reason: `duplicate user: line ${first} already names carta_user_id ${row.cartaUserId}`,
          cartaUserId: row.cartaUserId,
          clientId: row.clientId,
        })
        continue
      }
      seen.set(row.cartaUserId, row.line)
      batch.push(row)
      if (batch.length >= batchSize) await flush()
    }
    // Even an empty file leaves a run on the dashboard.
    await flush()
  } catch (err) {
    if (runId !== null)
      await db
        .updateTable('import_runs')
        .set({ status: 'failed', finished_at: clock.now(), error: (err as Error).message.slice(0, 500) })
        .where('id', '=', runId)
        .execute()
    log.error({ runId, err: (err as Error).message }, 'import failed')
    throw err
  }

  const finished = clock.now()
  if (runId !== null) {
    const id = runId
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('import_runs')
        .set({ status: 'done', finished_at: finished, heartbeat_at: finished })
        .where('id', '=', id)
        .execute()
      await recordAudit(trx, finished, {
        type: 'grants.imported',
        actor: options.actor,
        details: { runId: id, file: options.fileName, format: options.format, lines: progress.lines, ...counts },
      })
    })
  }
  const result: ImportResult = { runId, ...counts, lines: progress.lines, ms: finished - started }
  log.info({ ...result, file: options.fileName, dryRun: !!options.dryRun }, 'import finished')
  return result
}

/**
 * One transaction: the batch's rows and the run's counters. On a dry run the same work is done
 * and rolled back, so the summary is what a real run would print.
 */
async function recordBatch(
  deps: ImportDeps,
  rows: ImportRow[],
  rejected: number,
  runId: number | null,
  options: ImportOptions,
): Promise<Outcome[]> {
  const now = deps.clock.now()
  let outcomes: Outcome[] = []
  try {
    await deps.db.transaction().execute(async (trx) => {
      outcomes = []
      for (const row of rows) outcomes.push(await recordRow(trx, deps, row, runId ?? 0, options.actor, now))
      if (options.dryRun) throw new DryRunRollback()
      if (runId !== null) {
        const n = (o: Outcome) => outcomes.filter((x) => x === o).length
        await trx
          .updateTable('import_runs')
          .set((eb) => ({
            created: eb('created', '+', n('created')),
            superseded: eb('superseded', '+', n('superseded')),
            unchanged: eb('unchanged', '+', n('unchanged')),
            rejected: eb('rejected', '+', rejected),
            heartbeat_at: now,
          }))
          .where('id', '=', runId)
          .execute()
      }
    })
  } catch (err) {
    if (!(err instanceof DryRunRollback)) throw err
  }
  return outcomes
}

async function recordRow(
  trx: Trx,
  deps: ImportDeps,
  row: ImportRow,
  runId: number,
  actor: string,
  now: number,
): Promise<Outcome> {
  const fingerprint = rowFingerprint(row)
  const app = await trx
    .selectFrom('oauth_apps')
    .select(['id', 'key'])
    .where('client_id', '=', row.clientId)
    .executeTakeFirstOrThrow()
  let user = await trx
    .selectFrom('end_users')
    .select(['id', 'email', 'name'])
    .where('carta_user_id', '=', row.cartaUserId)
    .executeTakeFirst()
  const grantedAt = row.grantedAt ?? now
  if (user) {
    const grants = await trx
      .selectFrom('grants')
      .select(['id', 'status', 'created_at', 'import_fingerprint'])
      .where('user_id', '=', user.id)
      .execute()
    // The same row again, or a row older than what the ledger already knows: nothing to do.
    if (grants.some((g) => g.import_fingerprint === fingerprint)) return 'unchanged'
    if (grants.some((g) => g.created_at >= grantedAt)) return 'unchanged'
    // Identity the ledger lacked is filled in; what it has is kept (it came from Carta).
    const fill = {
      ...(user.email === null && row.email ? { email: row.email } : {}),
      ...(user.name === null && row.name ? { name: row.name } : {}),
    }
    if (Object.keys(fill).length)
      await trx
        .updateTable('end_users')
        .set({ ...fill, updated_at: now })
        .where('id', '=', user.id)
        .execute()
  } else {
    user = await trx
      .insertInto('end_users')
      .values({
        carta_user_id: row.cartaUserId,
        local_key: null,
        email: row.email,
        name: row.name,
        active_grant_id: null,
        status: 'connected',
        created_at: now,
        updated_at: now,
      })
      .returning(['id', 'email', 'name'])
      .executeTakeFirstOrThrow()
  }
  const hasTokens = row.accessToken !== null || row.refreshToken !== null
  const result = await changeGrant(
    trx,
    deps.cipher,
    {
      kind: 'granted',
      userId: user.id,
      app,
      requested: row.scopes ?? [],
      granted: row.scopes ?? [],
      source: row.scopes ? 'imported' : 'unknown',
      // Without an access token, an expired one: the first use refreshes it.
      tokens: hasTokens
        ? {
            accessToken: row.accessToken ?? '',
            refreshToken: row.refreshToken,
            expiresAt: row.accessToken ? row.accessExpiresAt : 0,
            tokenType: 'Bearer',
            scope: undefined,
          }
        : null,
      actor,
      grantedAt,
      imported: { runId, fingerprint },
      details: { line: row.line },
    },
    now,
  )
  return result.supersededGrantId !== null ? 'superseded' : 'created'
}

/** Import runs, newest first (the dashboard's list). */
export async function listImportRuns(db: Db, limit = 50) {
  return db
    .selectFrom('import_runs')
    .selectAll()
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute()
}
