// /admin/imports: the import runs (who, when, which file, counts, rejects) and scope discovery's
// progress, estimate and pause switch (src/README.md, "Imports"). Imports themselves run from the
// command line (`import-grants`); discovery runs as the `scope-discovery` job.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { recordAudit } from '../../../audit/events.js'
import { listImportRuns } from '../../../imports/import.js'
import { discoveryStatus, setDiscoveryPaused } from '../../../imports/discovery.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { operatorActor } from './access.js'

/** A run still 'running' whose last batch is older than this was interrupted (killed, crashed). */
const INTERRUPTED_AFTER_MS = 5 * 60_000

const DiscoveryBody = Type.Object({ action: Type.Union([Type.Literal('pause'), Type.Literal('resume')]) })

function duration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`
  return `${(seconds / 86_400).toFixed(1)} days`
}

const imports: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps

  app.get('/imports', { config: { access: 'viewer' } }, async (request, reply) => {
    const now = clock.now()
    const runs = (await listImportRuns(db, 50)).map((r) => ({
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
      rejectsFile: r.rejects_file,
      error: r.error,
    }))
    const discovery = await discoveryStatus({ db, config })
    return renderPage(request, reply, 'admin/imports', {
      title: 'Imports',
      csrf: true,
      runs,
      discovery: { ...discovery, estimate: duration(discovery.estimateSeconds) },
      rate: config.discoveryRate,
      formatTime,
    })
  })

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
