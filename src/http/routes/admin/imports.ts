// /admin/imports: the import runs (who, when, which file, counts, rejects) and scope discovery's
// progress, estimate and pause switch (src/README.md, "Imports"); one run's page and its rejected
// lines as CSV. Imports run from the upload form (import-upload.ts) or the command line
// (`import-grants`); discovery runs as the `scope-discovery` job.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { recordAudit } from '../../../audit/events.js'
import { DomainError } from '../../../errors.js'
import { csvLine } from '../../../csv.js'
import { listImportRuns } from '../../../imports/import.js'
import type { ImportRunTable } from '../../../imports/tables.js'
import { findImportRun, isStoredRejects, storedRejects } from '../../../imports/upload.js'
import type { Selectable } from 'kysely'
import { discoveryStatus, setDiscoveryPaused } from '../../../imports/discovery.js'
import { formatTime } from '../../../time.js'
import { sendCsv } from '../../csv.js'
import { formatBytes } from '../../error-pages.js'
import { renderPage } from '../../render.js'
import { IdParams } from '../../schemas.js'
import { operatorActor } from './access.js'
import importUpload from './import-upload.js'

/** A run still 'running' whose last batch is older than this was interrupted (killed, crashed). */
const INTERRUPTED_AFTER_MS = 5 * 60_000

/** Rejections listed on a run's page. */
const SHOWN_REJECTIONS = 20

const DiscoveryBody = Type.Object({ action: Type.Union([Type.Literal('pause'), Type.Literal('resume')]) })

function duration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`
  return `${(seconds / 86_400).toFixed(1)} days`
}

/** A run as the pages show it. */
function runView(r: Selectable<ImportRunTable>, now: number) {
  const stored = isStoredRejects(r.rejects_file)
  return {
    id: r.id,
    actor: r.actor,
    fileName: r.file_name,
    format: r.format,
    state: r.status === 'running' && now - Number(r.heartbeat_at) > INTERRUPTED_AFTER_MS ? 'interrupted' : r.status,
    startedAt: Number(r.started_at),
    seconds: r.finished_at === null ? null : ((Number(r.finished_at) - Number(r.started_at)) / 1000).toFixed(1),
    created: Number(r.created),
    superseded: Number(r.superseded),
    unchanged: Number(r.unchanged),
    rejected: Number(r.rejected),
    // A command-line run names the file it wrote; an upload's rejections are downloadable.
    rejectsFile: stored ? null : r.rejects_file,
    rejectsHref: stored && Number(r.rejected) > 0 ? `/admin/imports/runs/${r.id}/rejects.csv` : null,
    error: r.error,
  }
}

const imports: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  await app.register(importUpload)

  app.get('/imports', { config: { access: 'viewer' } }, async (request, reply) => {
    const now = clock.now()
    const runs = (await listImportRuns(db, 50)).map((r) => runView(r, now))
    const discovery = await discoveryStatus({ db, config })
    return renderPage(request, reply, 'admin/imports', {
      title: 'Imports',
      csrf: true,
      runs,
      discovery: { ...discovery, estimate: duration(discovery.estimateSeconds) },
      rate: config.discoveryRate,
      maxUpload: formatBytes(config.importUploadMaxBytes),
      formatTime,
    })
  })

  app.get(
    '/imports/runs/:id',
    { config: { access: 'viewer' }, schema: { params: IdParams } },
    async (request, reply) => {
      const row = await findImportRun(db, request.params.id)
      const run = runView(row, clock.now())
      // The first rejections on the page; all of them in the CSV.
      const rejections: Array<{ line: number; reason: string }> = []
      if (run.rejectsHref && isStoredRejects(row.rejects_file)) {
        for await (const r of storedRejects(db, row.rejects_file, SHOWN_REJECTIONS)) {
          rejections.push({ line: r.line, reason: r.reason })
          if (rejections.length >= SHOWN_REJECTIONS) break
        }
      }
      // A run still going: the browser reloads the page to show the counters moving.
      if (run.state === 'running') reply.header('refresh', '3')
      return renderPage(request, reply, 'admin/import-run', {
        title: `Import run #${run.id}`,
        dryRun: false,
        run,
        rejections,
        rejectsHref: run.rejectsHref,
        formatTime,
      })
    },
  )

  app.get(
    '/imports/runs/:id/rejects.csv',
    { config: { access: 'viewer' }, schema: { params: IdParams } },
    async (request, reply) => {
      const run = await findImportRun(db, request.params.id)
      const key = run.rejects_file
      if (!isStoredRejects(key)) throw new DomainError('import.run_not_found', 'no stored rejects', { runId: run.id })
      request.log.info({ runId: run.id }, 'import rejects download')
      return sendCsv(
        request,
        reply,
        `import-${run.id}-rejects.csv`,
        async (write) => {
          // Line numbers and reasons only (with the identity when the line had one): never a token.
          let pending = csvLine(['line', 'reason', 'carta_user_id', 'client_id'])
          let rows = 0
          for await (const r of storedRejects(db, key)) {
            pending += csvLine([r.line, r.reason, r.carta_user_id, r.client_id])
            rows += 1
            if (pending.length > 64 * 1024) {
              await write(pending)
              pending = ''
            }
          }
          await write(pending)
          return rows
        },
        (rows) => request.log.info({ runId: run.id, rows }, 'import rejects sent'),
      )
    },
  )

  app.post(
    '/imports/discovery',
    { config: { access: 'operator' }, preHandler: app.csrfProtection, schema: { body: DiscoveryBody } },
    async (request, reply) => {
      const paused = request.body.action === 'pause'
      const actor = operatorActor(request)
      const now = clock.now()
      await setDiscoveryPaused(db, paused, actor, now)
      await recordAudit(db, now, { type: paused ? 'discovery.paused' : 'discovery.resumed', actor })
      request.log.info({ paused }, 'scope discovery switched')
      if (!paused) app.jobs.kick('scope-discovery')
      return reply.redirect('/admin/imports', 303)
    },
  )
}

export default imports
