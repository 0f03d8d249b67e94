// Importing the grants an integrator already holds (src/README.md, "Imports"). The file is read as a
// stream; valid rows are recorded in batches, each batch one transaction that also moves the run's
// counters, so a kill at any moment leaves every row fully recorded or not at all, and the run's
// counters exact. Each grant goes through changeGrant (src/grants/change.ts): the supersede rule,
// the audit event and rollout membership come out as for a connection. Importing the same row
// again changes nothing (the row's fingerprint is on the grant), so re-running finishes the job.
import { recordAudit } from '../audit/events.js'
import type { Clock } from '../clock.js'
import type { Db } from '../db/index.js'
import {
  type ImportedGrant,
  type ImportOutcome,
  recordImportedGrant,
  recordImportedGrants,
} from '../grants/change-batch.js'
import { isRetryableConflict, refreshPlannerStatistics } from '../db/dialect.js'
import type { TokenCipher } from '../grants/token-cipher.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
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
import { SeenUsers } from './seen.js'

/** The tables an import grows, whose planner statistics it refreshes as it goes (PostgreSQL). */
const GROWN_TABLES = [
  'end_users',
  'grants',
  'grant_scopes',
  'grant_tokens',
  'rollout_members',
  'rollout_member_missing',
]

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
  /**
   * Record each row through changeGrant instead of the batch path: the reference the batch path is
   * tested against (same rows, ~15 statements per row).
   */
  rowByRow?: boolean
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

type ImportApps = Map<string, { id: number; key: string; scopes: Set<string> }>

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
  const seen = new SeenUsers()
  let pendingRejected = 0
  let batch: ImportRow[] = []
  let columns: ReturnType<typeof csvColumns> | null = null

  const reject = async (rejection: Rejection) => {
    counts.rejected += 1
    pendingRejected += 1
    await options.onRejection?.(rejection)
  }
  let analyzeAt = 5_000
  const flush = async () => {
    const rows = batch
    const rejected = pendingRejected
    batch = []
    pendingRejected = 0
    await ensureRun()
    const outcomes = await recordBatch(deps, rows, rejected, runId, options, byClient)
    for (const o of outcomes) counts[o] += 1
    // A large import grows the tables every page reads from near empty; PostgreSQL's planner keeps
    // planning from the old size until autovacuum (slow or off) analyzes them: after 1M rows the
    // rollout page took 604 ms with the empty tables' statistics, 22 ms after ANALYZE. So they are
    // refreshed each time the recorded rows double.
    const recorded = counts.created + counts.superseded
    if (!options.dryRun && recorded >= analyzeAt) {
      analyzeAt = recorded * 2
      await refreshPlannerStatistics(db, GROWN_TABLES)
    }
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
      const first = seen.firstLine(row.cartaUserId, row.line)
      if (first !== undefined) {
        await reject({
          line: row.line,
          reason: `duplicate user: line ${first} already names carta_user_id ${row.cartaUserId}`,
          cartaUserId: row.cartaUserId,
          clientId: row.clientId,
        })
        continue
      }
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
 * and rolled back, so the summary is what a real run would print. A batch that loses a race with
 * another writer (a deadlock, the same new user inserted by a concurrent import) runs again: it is
 * all-or-nothing, and rows already recorded count as unchanged.
 */
async function recordBatch(
  deps: ImportDeps,
  rows: ImportRow[],
  rejected: number,
  runId: number | null,
  options: ImportOptions,
  apps: ImportApps,
): Promise<ImportOutcome[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await recordBatchOnce(deps, rows, rejected, runId, options, apps)
    } catch (err) {
      if (attempt >= 3 || !isRetryableConflict(err)) throw err
    }
  }
}

async function recordBatchOnce(
  deps: ImportDeps,
  rows: ImportRow[],
  rejected: number,
  runId: number | null,
  options: ImportOptions,
  apps: ImportApps,
): Promise<ImportOutcome[]> {
  const now = deps.clock.now()
  const context = { runId: runId ?? 0, actor: options.actor }
  const grants = rows.map((row) => importedGrant(row, apps, now))
  let outcomes: ImportOutcome[] = []
  try {
    await deps.db.transaction().execute(async (trx) => {
      // A write first: on SQLite a transaction that reads first and writes later fails at once
      // (SQLITE_BUSY_SNAPSHOT, no busy wait) when another process wrote in between, e.g. the
      // server storing a session. Writing first waits for the lock instead (busy_timeout).
      await trx
        .updateTable('import_runs')
        .set({ heartbeat_at: now })
        .where('id', '=', runId ?? 0)
        .execute()
      if (options.rowByRow) {
        outcomes = []
        for (const row of grants) outcomes.push(await recordImportedGrant(trx, deps.cipher, row, context, now))
      } else {
        outcomes = await recordImportedGrants(trx, deps.cipher, grants, context, now)
      }
      if (options.dryRun) throw new DryRunRollback()
      if (runId !== null) {
        const n = (o: ImportOutcome) => outcomes.filter((x) => x === o).length
        await trx
          .updateTable('import_runs')
          .set((eb) => ({
            created: eb('created', '+', n('created')),
            superseded: eb('superseded', '+', n('superseded')),
            unchanged: eb('unchanged', '+', n('unchanged')),
            rejected: eb('rejected', '+', rejected),
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

/** A parsed row as the grants module records it. */
function importedGrant(row: ImportRow, apps: ImportApps, now: number): ImportedGrant {
  const app = apps.get(row.clientId)!
  const hasTokens = row.accessToken !== null || row.refreshToken !== null
  return {
    line: row.line,
    cartaUserId: row.cartaUserId,
    email: row.email,
    name: row.name,
    app: { id: app.id, key: app.key },
    scopes: row.scopes,
    grantedAt: row.grantedAt ?? now,
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
    fingerprint: rowFingerprint(row),
  }
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
