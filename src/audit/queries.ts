// Reading the audit trail: filters (user, type, date range), newest first, keyset pages over the
// (at, id) order so page 1000 costs what page 1 costs (src/README.md, "Scale"). Audit rows are append-only:
// this module only ever SELECTs.
import type { Selectable } from 'kysely'
import { type Db, MAX_ID } from '../db/index.js'
import type { AuditEventTable } from '../db/schema.js'
import { csvLine } from '../csv.js'
import type { AuditEventType } from './events.js'

export type AuditRow = Selectable<AuditEventTable>

export interface AuditFilters {
  userId?: number
  type?: AuditEventType
  /** Inclusive lower bound, epoch ms. */
  fromMs?: number
  /** Exclusive upper bound, epoch ms. */
  toMs?: number
}

export interface AuditCursor {
  at: number
  id: number
}

export interface AuditPage {
  rows: AuditRow[]
  /** Cursor for the next (older) page, null on the last page. */
  next: AuditCursor | null
}

/** Newest first; `before` continues after the last row of the previous page. */
export async function listAuditEvents(
  db: Db,
  filters: AuditFilters,
  options: { before?: AuditCursor | null; limit: number },
): Promise<AuditPage> {
  let q = db.selectFrom('audit_events').selectAll()
  if (filters.userId !== undefined) q = q.where('user_id', '=', filters.userId)
  if (filters.type) q = q.where('type', '=', filters.type)
  if (filters.fromMs !== undefined) q = q.where('at', '>=', filters.fromMs)
  if (filters.toMs !== undefined) q = q.where('at', '<', filters.toMs)
  const before = options.before
  if (before) {
    // Row-value comparison spelled out so it stays portable: (at, id) < (before.at, before.id).
    q = q.where((eb) => eb.or([eb('at', '<', before.at), eb.and([eb('at', '=', before.at), eb('id', '<', before.id)])]))
  }
  const rows = await q
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(options.limit + 1)
    .execute()
  const page = rows.slice(0, options.limit)
  const last = page[page.length - 1]
  return { rows: page, next: rows.length > options.limit && last ? { at: Number(last.at), id: Number(last.id) } : null }
}

/** Every matching event, newest first, in keyset batches (constant memory for the CSV export). */
export async function* auditEventBatches(db: Db, filters: AuditFilters, batchSize = 500): AsyncGenerator<AuditRow[]> {
  let before: AuditCursor | null = null
  for (;;) {
    const page: AuditPage = await listAuditEvents(db, filters, { before, limit: batchSize })
    if (page.rows.length > 0) yield page.rows
    if (!page.next) return
    before = page.next
  }
}

export function encodeCursor(cursor: AuditCursor): string {
  return `${cursor.at}.${cursor.id}`
}

export function decodeCursor(value: string | undefined): AuditCursor | null | 'invalid' {
  if (!value) return null
  const match = /^(\d{1,16})\.(\d{1,10})$/.exec(value)
  // An id past the column's range would be an error on PostgreSQL, not an empty page.
  return match && Number(match[2]) <= MAX_ID ? { at: Number(match[1]), id: Number(match[2]) } : 'invalid'
}

/** YYYY-MM-DD (UTC) → epoch ms at the start of that day; null when not a real date. */
export function parseDay(value: string): number | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value)
  if (!match) return null
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))
  return new Date(ms).toISOString().slice(0, 10) === value ? ms : null
}

export const CSV_HEADER = ['id', 'at_iso', 'type', 'actor', 'user_id', 'grant_id', 'app_id', 'rollout_id', 'details']

/** One audit event as a CSV record (src/csv.ts). */
export function auditCsvLine(row: AuditRow): string {
  return csvLine([
    row.id,
    new Date(Number(row.at)).toISOString(),
    row.type,
    row.actor,
    row.user_id,
    row.grant_id,
    row.app_id,
    row.rollout_id,
    row.details,
  ])
}
