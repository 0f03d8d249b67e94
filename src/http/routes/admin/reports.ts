// /admin/reports: latest runs, "Run report now", a server-rendered SVG trend per active rollout
// (with a table of the same numbers), and the downloads. The schedule itself is a background job
// (src/reports/scheduler.ts, run by app.jobs).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { recordAudit } from '../../../audit/events.js'
import { operatorActor } from './access.js'
import { DomainError } from '../../../errors.js'
import { renderPage } from '../../render.js'
import { Id } from '../../schemas.js'
import { readReportFile } from '../../../reports/files.js'
import { CONTENT_TYPES, REPORT_FORMATS, type ReportFormat, localTime, renderReport } from '../../../reports/formats.js'
import {
  type ReportContext,
  findRun,
  listRuns,
  loadReportDocument,
  manualSlotKey,
  activeRolloutTrends,
  runFiles,
  runReport,
} from '../../../reports/runs.js'
import { COVERAGE_DEFINITION, formatCoverage } from '../../../rollouts/coverage.js'
import { slotKey } from '../../../reports/scheduler.js'
import { trendSvg } from '../../../reports/svg.js'

const reports: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, clock } = app.deps
  const context: ReportContext = { db, config, clock, log: app.log }
  const scheduler = app.jobs.get('reports').scheduler

  app.get(
    '/reports',
    { config: { access: 'viewer' }, schema: { querystring: Type.Object({ run: Type.Optional(Id) }) } },
    async (request, reply) => {
      const tz = config.reports.timeZone
      const runs = await listRuns(db, 20)
      const trends = (await activeRolloutTrends(db, 60)).map(({ id, name, points }) => ({
        id,
        name,
        svg: trendSvg(points, { title: `Coverage of ${name} over time`, timeZone: tz }),
        rows: points.map((p) => ({ ...p, when: localTime(p.takenAt, tz) })).reverse(),
      }))
      const justRan = request.query.run === undefined ? undefined : runs.find((r) => r.id === request.query.run)
      return renderPage(request, reply, 'admin/reports', {
        title: 'Reports',
        csrf: true,
        justRan,
        runs: runs.map((r) => ({
          ...r,
          when: localTime(Number(r.started_at), tz),
          seconds: r.finished_at ? ((Number(r.finished_at) - Number(r.started_at)) / 1000).toFixed(1) : null,
          files: runFiles(r),
          slotLabel: r.trigger === 'schedule' ? localTime(Date.parse(r.slot_key), tz) : 'on demand',
        })),
        trends,
        coverageDefinition: COVERAGE_DEFINITION,
        formatCoverage,
        schedule: {
          cron: config.reports.cron,
          timeZone: tz,
          dir: config.reports.dir,
          next: scheduler.pendingSlot === null ? null : localTime(scheduler.pendingSlot, tz),
          nextIso: scheduler.pendingSlot === null ? null : slotKey(scheduler.pendingSlot),
          active: app.jobs.started,
          webhook: config.reports.webhookUrl ? new URL(config.reports.webhookUrl).origin : null,
        },
      })
    },
  )

  app.post(
    '/reports/run',
    { config: { access: 'operator' }, preHandler: app.csrfProtection },
    async (request, reply) => {
      const outcome = await runReport({ ...context, log: request.log }, { slotKey: manualSlotKey(), trigger: 'manual' })
      if (outcome.status === 'skipped') throw new DomainError('report.not_run', 'That run is already recorded.', {})
      // Delivery retries can take a while: finish it in the background, recorded on the run.
      if (outcome.status === 'succeeded') void outcome.delivery.catch(() => null)
      // Report emails were queued by the run: send them now rather than at the mail job's next pass.
      if (outcome.status === 'succeeded' && outcome.mailQueued > 0) app.jobs.kick('mail')
      if (outcome.runId) {
        await recordAudit(db, clock.now(), {
          type: 'report.run',
          actor: operatorActor(request),
          details: { runId: outcome.runId, status: outcome.status },
        })
      }
      return reply.redirect(`/admin/reports?run=${outcome.runId}`, 303)
    },
  )

  const FileParams = Type.Object({ id: Id, file: Type.Enum(REPORT_FORMATS.map((f) => `report.${f}` as const)) })
  app.get(
    '/reports/runs/:id/:file',
    { config: { access: 'viewer' }, schema: { params: FileParams } },
    async (request, reply) => {
      const { id } = request.params
      const notFound = () => new DomainError('report.not_found', 'There is no report file at this address.', {})
      const format = request.params.file.slice('report.'.length) as ReportFormat
      const run = await findRun(db, id)
      if (!run) throw notFound()
      if (run.status !== 'succeeded') {
        throw new DomainError('report.unavailable', `Run ${run.id} has no report.`, {
          runId: run.id,
          status: run.status,
          error: run.error,
        })
      }
      const files = runFiles(run)
      const name = files[format] ?? `coverage-run-${run.id}.${format}`
      let body = await readReportFile(config.reports.dir, name)
      if (body === null) {
        request.log.info({ runId: run.id, format }, 'report file missing; re-rendered from the database')
        body = renderReport(await loadReportDocument(db, run, config.reports.timeZone), format)
      }
      reply
        .type(CONTENT_TYPES[format])
        .header('content-disposition', `${format === 'html' ? 'inline' : 'attachment'}; filename="${name}"`)
      // The HTML report is self-contained (inline <style>, no script): allow exactly that.
      if (format === 'html')
        reply.header(
          'content-security-policy',
          "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
      return reply.send(body)
    },
  )
}

export default reports
