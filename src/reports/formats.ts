// The report's file formats (JSON, CSV, HTML) and the terminal summary. All are pure functions
// of a ReportDocument, so a file that went missing can be rebuilt byte for byte from the DB.
import { csvLine } from '../csv.js'
import { FUNNEL_LABELS, FUNNEL_STEPS } from '../mail/funnel.js'
import { COVERAGE_DEFINITION, COVERAGE_FORMULA, formatCoverage } from '../rollouts/coverage.js'
import { wallClock } from '../time.js'
import { eta } from '../views.js'
import type { ReportTrigger } from './tables.js'
import type { RolloutCoverage } from './snapshot.js'

export interface ReportDocument {
  runId: number
  trigger: ReportTrigger
  /** Scheduled slot (ISO) or manual:<uuid>. */
  slotKey: string
  takenAt: number
  timeZone: string
  rollouts: RolloutCoverage[]
}

export type ReportFormat = 'json' | 'csv' | 'html'
export const REPORT_FORMATS: ReportFormat[] = ['json', 'csv', 'html']
export const CONTENT_TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  html: 'text/html; charset=utf-8',
}

/** Local date and time of `at` in the report time zone: ['2025-01-31', '0600']. */
export function localStamp(at: number, timeZone: string): [string, string] {
  const parts = wallClock(at, timeZone)
  return [`${parts.year}-${parts.month}-${parts.day}`, `${parts.hour}${parts.minute}`]
}

export function localTime(at: number, timeZone: string): string {
  const [date, hhmm] = localStamp(at, timeZone)
  return `${date} ${hhmm.slice(0, 2)}:${hhmm.slice(2)} ${timeZone}`
}

/** coverage-<YYYY-MM-DD>-<HHMM>-<runId>.<ext>, date and time in the report time zone. */
export function reportFileName(
  doc: Pick<ReportDocument, 'runId' | 'takenAt' | 'timeZone'>,
  format: ReportFormat,
): string {
  const [date, hhmm] = localStamp(doc.takenAt, doc.timeZone)
  return `coverage-${date}-${hhmm}-${doc.runId}.${format}`
}

export function renderReport(doc: ReportDocument, format: ReportFormat): string {
  if (format === 'json') return toJson(doc)
  if (format === 'csv') return toCsv(doc)
  return toHtml(doc)
}

export function toJson(doc: ReportDocument): string {
  return `${JSON.stringify(
    {
      report: 'scope-ledger-coverage',
      version: 1,
      runId: doc.runId,
      trigger: doc.trigger,
      slot: doc.slotKey,
      takenAt: new Date(doc.takenAt).toISOString(),
      timeZone: doc.timeZone,
      coverageDefinition: COVERAGE_DEFINITION,
      rollouts: doc.rollouts,
    },
    null,
    2,
  )}\n`
}

/**
 * Long format: one row per rollout × measure, so rollouts with different scope sets and apps
 * share one header. measure ∈ members, active_users, covered, lacking, reconnect, coverage_pct
 * (key = its definition, COVERAGE_FORMULA), lacking_scope (key = scope), scopes_unknown (lacking
 * members whose scopes are unknown, counted in every lacking_scope), app_users (key = app key),
 * links_issued, links_used,
 * links_issued_24h, links_used_24h, funnel (key = step of mail/funnel.ts FUNNEL_STEPS: people at it).
 */
export function toCsv(doc: ReportDocument): string {
  const taken = new Date(doc.takenAt).toISOString()
  const lines = [csvLine(['run_id', 'taken_at', 'rollout_id', 'rollout_name', 'measure', 'key', 'value'])]
  for (const r of doc.rollouts) {
    const row = (measure: string, key: string, value: number | null) =>
      lines.push(csvLine([doc.runId, taken, r.rolloutId, r.name, measure, key, value]))
    row('members', '', r.members)
    row('active_users', '', r.activeUsers)
    row('covered', '', r.covered)
    row('lacking', '', r.lacking)
    row('reconnect', '', r.reconnect)
    row('coverage_pct', COVERAGE_FORMULA, r.coveragePct)
    for (const [scope, n] of Object.entries(r.lackingByScope)) row('lacking_scope', scope, n)
    row('scopes_unknown', '', r.scopesUnknown)
    for (const a of r.usersByApp) row('app_users', a.appKey, a.users)
    row('links_issued', '', r.links.issued)
    row('links_used', '', r.links.used)
    row('links_issued_24h', '', r.links.issued24h)
    row('links_used_24h', '', r.links.used24h)
    if (r.funnel) for (const step of FUNNEL_STEPS) row('funnel', step, r.funnel[step])
  }
  return lines.join('')
}

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

const pct = formatCoverage

/** A self-contained page (inline styles, no scripts) that reads well when opened from disk (views/report.eta). */
export function toHtml(doc: ReportDocument): string {
  return eta.render('report', {
    doc,
    when: localTime(doc.takenAt, doc.timeZone),
    takenIso: new Date(doc.takenAt).toISOString(),
    pct,
    definition: COVERAGE_DEFINITION,
    funnelSteps: FUNNEL_STEPS.map((step) => ({ step, label: FUNNEL_LABELS[step] })),
  })
}

/** One line per rollout with its funnel (people per step), for the terminal and the email text. */
export function funnelLines(doc: Pick<ReportDocument, 'rollouts'>): string[] {
  return doc.rollouts
    .filter((r) => r.funnel)
    .map((r) => `${r.name}: ${FUNNEL_STEPS.map((step) => `${step}=${r.funnel![step]}`).join(' ')}`)
}

/** Plain-text table for the terminal, with the definition of coverage under it. */
export function summaryTable(doc: Pick<ReportDocument, 'rollouts'>): string {
  if (doc.rollouts.length === 0) return 'No active rollout.'
  const header = ['Rollout', 'Members', 'Covered', 'Lacking', 'Reconnect', 'Coverage', 'Lacking per scope']
  const rows = doc.rollouts.map((r) => [
    r.name,
    String(r.members),
    String(r.covered),
    String(r.lacking),
    String(r.reconnect),
    pct(r.coveragePct),
    Object.entries(r.lackingByScope)
      .map(([s, n]) => `${s}=${n}`)
      .join(' ') + (r.scopesUnknown ? ` (${r.scopesUnknown} with unknown scopes)` : ''),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const numeric = new Set([1, 2, 3, 4, 5])
  const funnels = funnelLines(doc)
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
  return [
    line(header),
    widths.map((w, i) => '-'.repeat(i === widths.length - 1 ? header[i]!.length : w)).join('  '),
    ...rows.map(line),
    ...(funnels.length > 0 ? ['', 'Funnel (people per step):', ...funnels] : []),
    '',
    COVERAGE_DEFINITION,
  ].join('\n')
}
