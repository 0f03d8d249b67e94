// /admin/audit: the audit trail for operators, filtered by user, event type and date range,
// newest first with keyset paging, and the same filters exported as CSV.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Static, Type } from 'typebox'
import { AUDIT_EVENT_TYPES } from '../../../audit/events.js'
import { DomainError } from '../../../errors.js'
import { DAY_MS, formatTime, isoDate } from '../../../time.js'
import { csvLine } from '../../../csv.js'
import { sendCsv } from '../../csv.js'
import { renderPage } from '../../render.js'
import { Id, Matching } from '../../schemas.js'
import {
  type AuditFilters,
  CSV_HEADER,
  auditCsvLine,
  decodeCursor,
  encodeCursor,
  auditEventBatches,
  listAuditEvents,
  parseDay,
} from '../../../audit/queries.js'

const PAGE_SIZE = 50
const DAY = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'

const AuditQuery = Type.Object({
  user: Type.Optional(Id),
  type: Type.Optional(Type.Enum([...AUDIT_EVENT_TYPES])),
  /** Whole UTC days, YYYY-MM-DD; "to" includes its own day. */
  from: Type.Optional(Matching(DAY, 10)),
  to: Type.Optional(Matching(DAY, 10)),
  /** The next-page cursor (audit/queries.ts encodeCursor). */
  before: Type.Optional(Matching('^[0-9]{1,16}\\.[0-9]{1,10}$', 30)),
})
type AuditQuery = Static<typeof AuditQuery>

/** Validated query → filters; a date that does not exist, or a range upside down, is a 400 page. */
function auditFilters(query: AuditQuery): AuditFilters {
  const filters: AuditFilters = {}
  if (query.user !== undefined) filters.userId = query.user
  if (query.type !== undefined) filters.type = query.type
  for (const field of ['from', 'to'] as const) {
    const value = query[field]
    if (value === undefined) continue
    const day = parseDay(value)
    if (day === null)
      throw new DomainError('request.invalid', `The "${field}" date must be a date like 2025-01-31.`, {
        title: 'Invalid filter',
      })
    if (field === 'from') filters.fromMs = day
    else filters.toMs = day + DAY_MS
  }
  if (filters.fromMs !== undefined && filters.toMs !== undefined && filters.fromMs >= filters.toMs) {
    throw new DomainError('request.invalid', 'The "from" date must not be after the "to" date.', {
      title: 'Invalid filter',
    })
  }
  return filters
}

function queryString(form: Record<string, string>, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries({ ...form, ...extra })) if (v) params.set(k, v)
  const text = params.toString()
  return text ? `?${text}` : ''
}

const audit: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock } = app.deps
  const schema = { querystring: AuditQuery }
  const config = { access: 'viewer' as const }

  app.get('/audit', { config, schema }, async (request, reply) => {
    const filters = auditFilters(request.query)
    const form = {
      user: request.query.user === undefined ? '' : String(request.query.user),
      type: request.query.type ?? '',
      from: request.query.from ?? '',
      to: request.query.to ?? '',
    }
    const before = decodeCursor(request.query.before)
    if (before === 'invalid')
      throw new DomainError('request.invalid', 'That page link is malformed.', { title: 'Invalid page' })
    const page = await listAuditEvents(db, filters, { before, limit: PAGE_SIZE })
    return renderPage(request, reply, 'admin/audit', {
      title: 'Audit trail',
      form,
      types: AUDIT_EVENT_TYPES,
      rows: page.rows.map((r) => ({
        ...r,
        atIso: formatTime(Number(r.at), 'seconds'),
      })),
      nextHref: page.next ? `/admin/audit${queryString(form, { before: encodeCursor(page.next) })}` : null,
      firstHref: before ? `/admin/audit${queryString(form)}` : null,
      csvHref: `/admin/audit.csv${queryString(form)}`,
    })
  })

  app.get('/audit.csv', { config, schema }, async (request, reply) => {
    const filters = auditFilters(request.query)
    request.log.info({ filters }, 'audit CSV export')
    return sendCsv(
      request,
      reply,
      `audit-${isoDate(clock.now())}.csv`,
      async (write) => {
        // The header goes out with the first batch, so a failure before it is still an error page.
        let pending = csvLine(CSV_HEADER)
        let rows = 0
        for await (const batch of auditEventBatches(db, filters)) {
          await write(pending + batch.map(auditCsvLine).join(''))
          pending = ''
          rows += batch.length
        }
        if (pending) await write(pending)
        return rows
      },
      (rows) => request.log.info({ rows }, 'audit CSV export finished'),
    )
  })
}

export default audit
