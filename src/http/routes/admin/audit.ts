// /admin/audit: the audit trail for operators, filtered by user, event type and date range,
// newest first with keyset paging, and the same filters exported as CSV.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { type Static, Type } from 'typebox'
import { AUDIT_EVENT_TYPES, type AuditEventType } from '../../../audit/events.js'
import { DomainError } from '../../../errors.js'
import { DAY_MS, dayStartIn, formatTimeIn, isTimeZone, isoDate } from '../../../time.js'
import { EVENT_LABELS, auditNames, describeActor, describeDetails } from '../../../audit/describe.js'
import { csvLine } from '../../../csv.js'
import { sendCsv } from '../../csv.js'
import { renderPage } from '../../render.js'
import { Id, Matching, Text } from '../../schemas.js'
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
  /** The operator's IANA time zone for times and days (else the sl_tz cookie app.js sets, else REPORT_TIMEZONE). */
  tz: Type.Optional(Text(64)),
  /** Whole days in that zone, YYYY-MM-DD; "to" includes its own day. */
  from: Type.Optional(Matching(DAY, 10)),
  to: Type.Optional(Matching(DAY, 10)),
  /** The next-page cursor (audit/queries.ts encodeCursor). */
  before: Type.Optional(Matching('^[0-9]{1,16}\\.[0-9]{1,10}$', 30)),
})
type AuditQuery = Static<typeof AuditQuery>

/** Validated query → filters; a date that does not exist, or a range upside down, is a 400 page. */
function auditFilters(query: AuditQuery, timeZone = 'UTC'): AuditFilters {
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
    if (field === 'from') filters.fromMs = dayStartIn(day, timeZone)
    else filters.toMs = dayStartIn(day + DAY_MS, timeZone)
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
  const { db, clock, config } = app.deps
  const schema = { querystring: AuditQuery }

  /** The zone the page shows times in, and why: asked for, the browser's (app.js), or the setting. */
  const operatorZone = (request: FastifyRequest, query: AuditQuery) => {
    const asked = query.tz
    if (asked !== undefined) {
      if (!isTimeZone(asked))
        throw new DomainError('request.invalid', `"${asked.slice(0, 64)}" is not a time zone like Europe/Paris.`, {
          title: 'Invalid filter',
        })
      return { zone: asked, source: 'chosen' as const }
    }
    const cookie = request.cookies?.sl_tz
    if (cookie && isTimeZone(cookie)) return { zone: cookie, source: 'browser' as const }
    return { zone: config.reports.timeZone, source: 'setting' as const }
  }

  app.get('/audit', { config: { access: 'viewer' }, schema }, async (request, reply) => {
    const tz = operatorZone(request, request.query)
    const filters = auditFilters(request.query, tz.zone)
    const form = {
      user: request.query.user === undefined ? '' : String(request.query.user),
      type: request.query.type ?? '',
      from: request.query.from ?? '',
      to: request.query.to ?? '',
      tz: request.query.tz ?? '',
    }
    const before = decodeCursor(request.query.before)
    if (before === 'invalid')
      throw new DomainError('request.invalid', 'That page link is malformed.', { title: 'Invalid page' })
    const page = await listAuditEvents(db, filters, { before, limit: PAGE_SIZE })
    const names = await auditNames(db, page.rows)
    const time = (ms: number) => formatTimeIn(ms, tz.zone)
    return renderPage(request, reply, 'admin/audit', {
      title: 'Audit trail',
      form,
      types: AUDIT_EVENT_TYPES.map((type) => ({ type, label: EVENT_LABELS[type] })),
      timeZone: tz.zone,
      timeZoneSource: tz.source,
      rows: page.rows.map((r) => {
        let details: Record<string, unknown> = {}
        try {
          details = JSON.parse(r.details) as Record<string, unknown>
        } catch {
          details = { details: r.details }
        }
        const userId = r.user_id === null ? null : Number(r.user_id)
        const appId = r.app_id === null ? null : Number(r.app_id)
        const rolloutId = r.rollout_id === null ? null : Number(r.rollout_id)
        return {
          id: r.id,
          when: time(Number(r.at)),
          type: r.type,
          label: EVENT_LABELS[r.type as AuditEventType] ?? r.type,
          actor: describeActor(r.actor, names),
          user: userId === null ? null : { id: userId, label: names.users.get(userId)?.label ?? `User ${userId}` },
          app: appId === null ? null : { id: appId, name: names.apps.get(appId)?.name ?? `App ${appId}` },
          rollout:
            rolloutId === null
              ? null
              : { id: rolloutId, name: names.rollouts.get(rolloutId)?.name ?? `Rollout ${rolloutId}` },
          grantId: r.grant_id,
          sentence: describeDetails(r.type as AuditEventType, details, names, time),
        }
      }),
      nextHref: page.next ? `/admin/audit${queryString(form, { before: encodeCursor(page.next) })}` : null,
      firstHref: before ? `/admin/audit${queryString(form)}` : null,
      csvHref: `/admin/audit.csv${queryString(form)}`,
    })
  })

  app.get('/audit.csv', { config: { access: 'viewer' }, schema }, async (request, reply) => {
    const filters = auditFilters(request.query, operatorZone(request, request.query).zone)
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
