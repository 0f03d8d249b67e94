// /admin/audit: the audit trail for operators, filtered by user, event type and date range,
// newest first with keyset paging, and the same filters exported as CSV.
import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { DomainError } from '../../../errors.js'
import { renderPage } from '../../render.js'
import {
  type AuditFilters,
  CSV_HEADER,
  csvLine,
  DAY_MS,
  decodeCursor,
  encodeCursor,
  iterateAuditEvents,
  KNOWN_AUDIT_TYPES,
  listAuditEvents,
  parseDay,
} from '../../../audit/queries.js'

const PAGE_SIZE = 50

interface AuditQuery {
  user?: string
  type?: string
  from?: string
  to?: string
  before?: string
}

/** Query string → filters; a malformed value is a 400 page naming the field, never a silent ignore. */
function parseFilters(query: AuditQuery): { filters: AuditFilters; form: Required<Omit<AuditQuery, 'before'>> } {
  const form = {
    user: (query.user ?? '').trim(),
    type: (query.type ?? '').trim(),
    from: (query.from ?? '').trim(),
    to: (query.to ?? '').trim(),
  }
  const filters: AuditFilters = {}
  if (form.user) {
    if (!/^\d{1,15}$/.test(form.user))
      throw new DomainError('request.invalid', 'The user filter must be a user id (a whole number).', {
        title: 'Invalid filter',
      })
    filters.userId = Number(form.user)
  }
  if (form.type) {
    if (!/^[a-z_]{1,40}\.[a-z_]{1,40}$/.test(form.type))
      throw new DomainError('request.invalid', 'Unknown event type.', { title: 'Invalid filter' })
    filters.type = form.type
  }
  for (const field of ['from', 'to'] as const) {
    if (!form[field]) continue
    const day = parseDay(form[field])
    if (day === null)
      throw new DomainError('request.invalid', `The "${field}" date must be a date like 2025-01-31.`, {
        title: 'Invalid filter',
      })
    // Dates are whole UTC days; "to" includes its own day.
    if (field === 'from') filters.fromMs = day
    else filters.toMs = day + DAY_MS
  }
  if (filters.fromMs !== undefined && filters.toMs !== undefined && filters.fromMs >= filters.toMs) {
    throw new DomainError('request.invalid', 'The "from" date must not be after the "to" date.', {
      title: 'Invalid filter',
    })
  }
  return { filters, form }
}

function queryString(form: Record<string, string>, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries({ ...form, ...extra })) if (v) params.set(k, v)
  const text = params.toString()
  return text ? `?${text}` : ''
}

export default async function audit(app: FastifyInstance): Promise<void> {
  const { db } = app.deps

  app.get<{ Querystring: AuditQuery }>('/audit', async (request, reply) => {
    const { filters, form } = parseFilters(request.query)
    const before = decodeCursor(request.query.before)
    if (before === 'invalid')
      throw new DomainError('request.invalid', 'That page link is malformed.', { title: 'Invalid page' })
    const page = await listAuditEvents(db, filters, { before, limit: PAGE_SIZE })
    const types = [...KNOWN_AUDIT_TYPES] as string[]
    if (form.type && !types.includes(form.type)) types.push(form.type)
    return renderPage(request, reply, 'admin/audit', {
      title: 'Audit trail',
      form,
      types,
      rows: page.rows.map((r) => ({
        ...r,
        atIso: `${new Date(Number(r.at)).toISOString().replace('T', ' ').slice(0, 19)} UTC`,
      })),
      nextHref: page.next ? `/admin/audit${queryString(form, { before: encodeCursor(page.next) })}` : null,
      firstHref: before ? `/admin/audit${queryString(form)}` : null,
      csvHref: `/admin/audit.csv${queryString(form)}`,
    })
  })

  app.get<{ Querystring: AuditQuery }>('/audit.csv', async (request, reply) => {
    const { filters } = parseFilters(request.query)
    request.log.info({ filters }, 'audit CSV export')
    async function* lines(): AsyncGenerator<string> {
      yield `${CSV_HEADER.join(',')}\r\n`
      for await (const row of iterateAuditEvents(db, filters)) yield csvLine(row)
    }
    const stamp = new Date(app.deps.clock.now()).toISOString().slice(0, 10)
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="audit-${stamp}.csv"`)
      .header('cache-control', 'no-store')
      .send(Readable.from(lines()))
  })
}
