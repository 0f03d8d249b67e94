// One report run: claim the slot (the UNIQUE slot_key decides which instance runs), compute the
// snapshot, write the files, store the snapshot rows, then deliver the summary if configured.
// A failure at any step is recorded on the run (status failed + error) and logged; it never
// throws out to the scheduler.
import { randomUUID } from 'node:crypto'
import type { Selectable } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Db } from '../db/index.js'
import { isUniqueViolation } from '../db/dialect.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
import { writeFilesAtomically, removeFiles } from './files.js'
import { REPORT_FORMATS, type ReportDocument, type ReportFormat, renderReport, reportFileName } from './formats.js'
import { queueReportEmails } from '../mail/report-mail.js'
import { coveragePercent } from '../rollouts/coverage.js'
import { reportMessage } from './email.js'
import { type RolloutCoverage, type SnapshotDetail, computeSnapshot } from './snapshot.js'
import type { CoverageSnapshotTable, ReportRunTable, ReportTrigger } from './tables.js'
import {
  type DeliveryOptions,
  type DeliveryResult,
  defaultDelivery,
  deliver,
  webhookBody,
  webhookOrigin,
} from './webhook.js'

export type RunRow = Selectable<ReportRunTable>
export type SnapshotRow = Selectable<CoverageSnapshotTable>
export type ReportFiles = Partial<Record<ReportFormat, string>>

export interface ReportContext {
  db: Db
  config: Pick<Config, 'reports' | 'publicUrl' | 'mail'>
  clock: Clock
  /** The app's logger, or the CLI's console adapter. */
  log: Logger
  delivery?: DeliveryOptions
}

export type RunOutcome =
  | { status: 'skipped'; slotKey: string }
  | {
      status: 'succeeded'
      runId: number
      slotKey: string
      document: ReportDocument
      files: ReportFiles
      /** Report emails queued in the outbox by this run (REPORT_EMAIL_TO). */
      mailQueued: number
      delivery: Promise<DeliveryResult | null>
    }
  | { status: 'failed'; runId: number; slotKey: string; error: string }

export function manualSlotKey(): string {
  return `manual:${randomUUID()}`
}

/** Inserts the run row; null when another run (instance) already holds this slot. */
export async function claimSlot(db: Db, slotKey: string, trigger: ReportTrigger, now: number): Promise<number | null> {
  try {
    const row = await db
      .insertInto('report_runs')
      .values({ slot_key: slotKey, trigger, started_at: now, status: 'running' })
      .returning('id')
      .executeTakeFirstOrThrow()
    return row.id
  } catch (err) {
    if (isUniqueViolation(err)) return null
    throw err
  }
}

export async function runReport(
  ctx: ReportContext,
  options: {
    slotKey: string
    trigger: ReportTrigger
    onProgress?: (done: number, total: number, name: string) => void
  },
): Promise<RunOutcome> {
  const { db, config, clock, log } = ctx
  const { slotKey, trigger } = options
  const startedAt = clock.now()
  let runId: number | null
  try {
    runId = await claimSlot(db, slotKey, trigger, startedAt)
  } catch (err) {
    // Nothing recorded (the database refused the run row itself): log and report failure.
    log.error({ slotKey, err: (err as Error).message }, 'report run could not start')
    return { status: 'failed', runId: 0, slotKey, error: `Cannot record the report run: ${(err as Error).message}` }
  }
  if (runId === null) {
    log.info({ slotKey }, 'report slot already taken by another run; skipping')
    return { status: 'skipped', slotKey }
  }
  log.info({ runId, slotKey, trigger }, 'report run started')

  const dir = config.reports.dir
  let written: string[] = []
  try {
    const snapshot = await computeSnapshot(db, startedAt, { log, onProgress: options.onProgress })
    const rows = snapshot.rollouts.map((r) => snapshotRow(runId!, snapshot.takenAt, r))
    // The files are rendered from exactly what is stored, so a re-render from the DB matches.
    const document: ReportDocument = {
      runId,
      trigger,
      slotKey,
      takenAt: snapshot.takenAt,
      timeZone: config.reports.timeZone,
      rollouts: rows.map(coverageFromRow),
    }
    const files: ReportFiles = {}
    const contents: Record<string, string> = {}
    for (const format of REPORT_FORMATS) {
      const name = reportFileName(document, format)
      files[format] = name
      contents[name] = renderReport(document, format)
    }
    await writeFilesAtomically(dir, contents)
    written = Object.keys(contents)
    const delivering = config.reports.webhookUrl !== null
    // Email needs a transport (SMTP, or the development mailbox); config refuses REPORT_EMAIL_TO
    // without one in production, so 'off' here means nobody asked for report emails.
    const readers = config.mail.transport.kind === 'off' ? [] : config.reports.emailTo
    let mailQueued = 0
    await db.transaction().execute(async (trx) => {
      if (rows.length > 0) await trx.insertInto('coverage_snapshots').values(rows).execute()
      await trx
        .updateTable('report_runs')
        .set({
          status: 'succeeded',
          finished_at: clock.now(),
          files: JSON.stringify(files),
          delivery_status: delivering ? 'pending' : null,
        })
        .where('id', '=', runId!)
        .execute()
      // In the run's own transaction: a run that succeeded has its emails queued, one that failed none.
      if (readers.length > 0) {
        const html = files.html!
        const message = reportMessage(
          document,
          { filename: html, content: contents[html]! },
          `${config.publicUrl}/admin/reports?run=${runId}`,
        )
        mailQueued = await queueReportEmails(trx, { slotKey, recipients: readers, message, now: clock.now() })
      }
    })
    log.info(
      { runId, slotKey, rollouts: rows.length, dir, files: written, mailQueued, ms: clock.now() - startedAt },
      'report run succeeded',
    )
    const delivery = delivering ? deliverRun(ctx, runId, document) : Promise.resolve(null)
    return { status: 'succeeded', runId, slotKey, document, files, mailQueued, delivery }
  } catch (err) {
    if (written.length > 0) await removeFiles(dir, written)
    const error = (err as Error).message
    log.error({ runId, slotKey, error }, 'report run failed')
    await db
      .updateTable('report_runs')
      .set({ status: 'failed', finished_at: clock.now(), error })
      .where('id', '=', runId)
      .execute()
      .catch((e: Error) => log.error({ runId, error: e.message }, 'could not record the failed report run'))
    return { status: 'failed', runId, slotKey, error }
  }
}

/** Posts the summary and records the outcome on the run. Never throws. */
async function deliverRun(ctx: ReportContext, runId: number, document: ReportDocument): Promise<DeliveryResult> {
  const url = ctx.config.reports.webhookUrl!
  const origin = webhookOrigin(url)
  const body = webhookBody(document, `${ctx.config.publicUrl}/admin/reports`)
  const result = await deliver(url, body, ctx.delivery ?? defaultDelivery)
  if (result.ok) ctx.log.info({ runId, webhook: origin, attempts: result.attempts }, 'report delivered to webhook')
  else
    ctx.log.warn(
      { runId, webhook: origin, attempts: result.attempts, error: result.error },
      'report delivery to webhook failed',
    )
  await ctx.db
    .updateTable('report_runs')
    .set({
      delivery_status: result.ok ? 'sent' : 'failed',
      delivery_error: result.error,
      delivery_attempts: result.attempts,
    })
    .where('id', '=', runId)
    .execute()
    .catch((e: Error) => ctx.log.error({ runId, error: e.message }, 'could not record the report delivery'))
  return result
}

function snapshotRow(runId: number, takenAt: number, r: RolloutCoverage): Omit<SnapshotRow, 'id'> {
  const detail: SnapshotDetail = {
    targetApp: r.targetApp,
    lackingByScope: r.lackingByScope,
    usersByApp: r.usersByApp,
    scopesUnknown: r.scopesUnknown,
    ...(r.funnel ? { funnel: r.funnel } : {}),
  }
  return {
    run_id: runId,
    rollout_id: r.rolloutId,
    rollout_name: r.name,
    required_scopes: r.requiredScopes.join(' '),
    taken_at: takenAt,
    members: r.members,
    active_users: r.activeUsers,
    covered: r.covered,
    lacking: r.lacking,
    reconnect: r.reconnect,
    links_issued: r.links.issued,
    links_used: r.links.used,
    links_issued_24h: r.links.issued24h,
    links_used_24h: r.links.used24h,
    detail: JSON.stringify(detail),
  }
}

export function coverageFromRow(row: Omit<SnapshotRow, 'id'>): RolloutCoverage {
  const detail = JSON.parse(row.detail) as SnapshotDetail
  const n = (v: number) => Number(v)
  return {
    rolloutId: row.rollout_id,
    name: row.rollout_name,
    targetApp: detail.targetApp,
    requiredScopes: parseScopes(row.required_scopes),
    members: n(row.members),
    activeUsers: n(row.active_users),
    covered: n(row.covered),
    lacking: n(row.lacking),
    reconnect: n(row.reconnect),
    coveragePct: coveragePercent(n(row.covered), n(row.members)),
    lackingByScope: detail.lackingByScope,
    scopesUnknown: detail.scopesUnknown ?? 0,
    usersByApp: detail.usersByApp,
    links: {
      issued: n(row.links_issued),
      used: n(row.links_used),
      issued24h: n(row.links_issued_24h),
      used24h: n(row.links_used_24h),
    },
    ...(detail.funnel ? { funnel: detail.funnel } : {}),
  }
}

// --- reading runs back ---------------------------------------------------------------------------

export async function listRuns(db: Db, limit = 20): Promise<RunRow[]> {
  return db
    .selectFrom('report_runs')
    .selectAll()
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute()
}

export async function findRun(db: Db, id: number): Promise<RunRow | undefined> {
  return db.selectFrom('report_runs').selectAll().where('id', '=', id).executeTakeFirst()
}

export function runFiles(run: Pick<RunRow, 'files'>): ReportFiles {
  try {
    return JSON.parse(run.files) as ReportFiles
  } catch {
    return {}
  }
}

/** The document of a succeeded run, rebuilt from its stored snapshot rows. */
export async function loadReportDocument(db: Db, run: RunRow, timeZone: string): Promise<ReportDocument> {
  const rows = await db
    .selectFrom('coverage_snapshots')
    .selectAll()
    .where('run_id', '=', run.id)
    .orderBy('rollout_id')
    .execute()
  return {
    runId: run.id,
    trigger: run.trigger,
    slotKey: run.slot_key,
    takenAt: rows[0] ? Number(rows[0].taken_at) : Number(run.started_at),
    timeZone,
    rollouts: rows.map(coverageFromRow),
  }
}

export interface TrendPoint {
  runId: number
  takenAt: number
  covered: number
  members: number
  coveragePct: number | null
}

/** The last `limit` snapshots of a rollout, oldest first (trend chart and its table). */
export async function rolloutTrend(db: Db, rolloutId: number, limit = 60): Promise<TrendPoint[]> {
  const rows = await db
    .selectFrom('coverage_snapshots')
    .select(['run_id', 'taken_at', 'covered', 'members'])
    .where('rollout_id', '=', rolloutId)
    .orderBy('taken_at', 'desc')
    .orderBy('run_id', 'desc')
    .limit(limit)
    .execute()
  return rows.reverse().map((r) => ({
    runId: r.run_id,
    takenAt: Number(r.taken_at),
    covered: Number(r.covered),
    members: Number(r.members),
    coveragePct: coveragePercent(Number(r.covered), Number(r.members)),
  }))
}

/** Runs left `running` by a process that died mid-run: mark them failed so the page says so. */
export async function failInterruptedRuns(db: Db, now: number, olderThanMs = 60 * 60 * 1000): Promise<number> {
  const result = await db
    .updateTable('report_runs')
    .set({ status: 'failed', finished_at: now, error: 'Interrupted: the process stopped before the run finished.' })
    .where('status', '=', 'running')
    .where('started_at', '<', now - olderThanMs)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Coverage trends of every active rollout (the reports page's charts): the last `limit` snapshots each. */
export async function activeRolloutTrends(
  db: Db,
  limit = 60,
): Promise<Array<{ id: number; name: string; points: TrendPoint[] }>> {
  const rollouts = await db
    .selectFrom('rollouts')
    .select(['id', 'name'])
    .where('status', '=', 'active')
    .orderBy('id')
    .execute()
  return Promise.all(rollouts.map(async (r) => ({ ...r, points: await rolloutTrend(db, r.id, limit) })))
}

/** Report runs so far by trigger and status: a metric. */
export async function reportRunCounts(db: Db): Promise<Array<{ trigger: string; status: string; count: number }>> {
  const rows = await db
    .selectFrom('report_runs')
    .select((eb) => ['trigger', 'status', eb.fn.countAll().as('n')])
    .groupBy(['trigger', 'status'])
    .execute()
  return rows.map((r) => ({ trigger: r.trigger, status: r.status, count: Number(r.n) }))
}
