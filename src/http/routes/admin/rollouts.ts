// The operator dashboard: the rollouts list with the create form, archiving, and a rollout's page
// (coverage summary, the lacking list with its filters and keyset pages, link state per row).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { listApps } from '../../../apps/apps.js'
import { DomainError, isDomainError } from '../../../errors.js'
import { rolloutSummary } from '../../../rollouts/coverage.js'
import { filterQuery, listLacking, parseLackingFilter } from '../../../rollouts/lacking.js'
import { latestLinks, linkContextFrom } from '../../../rollouts/links.js'
import { archiveRollout, findRollout, listRollouts, startRollout } from '../../../rollouts/rollouts.js'
import { parseScopes } from '../../../scopes.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { operatorActor } from './access.js'

type Body = Record<string, string | string[] | undefined>

function field(body: Body | undefined, name: string): string {
  const v = body?.[name]
  return (Array.isArray(v) ? v[0] : v) ?? ''
}

function fields(body: Body | undefined, name: string): string[] {
  const v = body?.[name]
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

function idParam(value: string, what: string): number {
  if (!/^\d{1,15}$/.test(value))
    throw new DomainError('request.not_found', `not a ${what.toLowerCase()} id: ${value.slice(0, 20)}`, {})
  return Number(value)
}

export default async function rollouts(app: FastifyInstance): Promise<void> {
  const { db, clock, config } = app.deps
  const csrf = { preHandler: app.csrfProtection }

  // --- rollouts --------------------------------------------------------------------------------

  const dashboard = async (
    request: FastifyRequest,
    reply: FastifyReply,
    form: { appId?: number; name?: string; scopes?: string[]; error?: { field: string; message: string } },
    status = 200,
  ) => {
    const [rollouts, apps] = await Promise.all([listRollouts(db), listApps(db)])
    const activeApps = apps.filter((a) => a.status === 'active')
    const defaultApp =
      activeApps.find((a) => a.environment === config.defaultEnvironment && a.is_current === 1) ?? activeApps[0]
    const target = activeApps.find((a) => a.id === form.appId) ?? defaultApp
    const targetScopes = target ? parseScopes(target.scopes) : []
    return renderPage(
      request,
      reply,
      'admin/index',
      {
        title: 'Rollouts',
        csrf: true,
        active: rollouts.filter((r) => r.status === 'active'),
        archived: rollouts.filter((r) => r.status === 'archived'),
        apps: activeApps,
        target: target ?? null,
        targetScopes,
        checked: form.scopes ?? targetScopes,
        name: form.name ?? '',
        error: form.error ?? null,
        parseScopes,
        formatTime,
      },
      status,
    )
  }

  app.get<{ Querystring: { app?: string } }>('/', async (request, reply) => {
    const appId = request.query.app && /^\d{1,9}$/.test(request.query.app) ? Number(request.query.app) : undefined
    return dashboard(request, reply, { appId })
  })

  app.post<{ Body: Body }>('/rollouts', csrf, async (request, reply) => {
    const appField = field(request.body, 'app_id')
    const input = {
      name: field(request.body, 'name'),
      appId: /^\d{1,9}$/.test(appField) ? Number(appField) : NaN,
      scopes: fields(request.body, 'scopes'),
    }
    try {
      // Returns at once: the membership of every user is measured in the background (build.ts).
      const id = await startRollout(db, input, operatorActor(request), clock.now())
      request.log.info({ rolloutId: id }, 'rollout created')
      app.jobs.kick('rollout-build')
      return reply.redirect(`/admin/rollouts/${id}`, 303)
    } catch (err) {
      if (!isDomainError(err, 'rollout.invalid')) throw err
      request.log.warn({ field: err.details.field, reason: err.message }, 'rollout form rejected')
      return dashboard(
        request,
        reply,
        {
          appId: Number.isNaN(input.appId) ? undefined : input.appId,
          name: input.name,
          scopes: input.scopes,
          error: { field: err.details.field, message: err.message },
        },
        400,
      )
    }
  })

  app.post<{ Params: { id: string } }>('/rollouts/:id/archive', csrf, async (request, reply) => {
    const id = idParam(request.params.id, 'Rollout')
    const rollout = await findRollout(db, id)
    if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
    const archived = await archiveRollout(db, id, operatorActor(request), clock.now())
    if (archived) request.log.info({ rolloutId: id }, 'rollout archived')
    return reply.redirect(`/admin/rollouts/${id}`, 303)
  })

  app.get<{ Params: { id: string }; Querystring: Record<string, string | string[]> }>(
    '/rollouts/:id',
    async (request, reply) => {
      const id = idParam(request.params.id, 'Rollout')
      const rollout = await findRollout(db, id)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
      const filter = parseLackingFilter(request.query)
      const afterRaw = request.query.after
      const after = typeof afterRaw === 'string' && afterRaw !== '' ? afterRaw : undefined
      if (afterRaw !== undefined && typeof afterRaw !== 'string')
        throw new DomainError('lacking.bad_cursor', 'This page link is malformed.', {})
      const [summary, page, apps] = await Promise.all([
        rolloutSummary(db, id, rollout.required_scopes),
        listLacking(db, id, filter, after ? { after } : {}),
        listApps(db),
      ])
      // Link state per row (none/sent/used/expired) and, for links still valid, the URL to copy.
      const linkStates = await latestLinks(
        db,
        id,
        page.rows.map((r) => r.userId),
        linkContextFrom(config, clock),
      )
      const linkParam =
        typeof request.query.link === 'string' && /^\d{1,15}$/.test(request.query.link)
          ? Number(request.query.link)
          : null
      const filtered = filter.scope !== undefined || filter.appId !== undefined || filter.search !== undefined
      const building = rollout.build_status === 'building' && rollout.status === 'active'
      // While building, the browser reloads every few seconds to show progress (no JavaScript needed).
      if (building) reply.header('refresh', '5')
      const buildTotal = Math.max(Number(rollout.build_total), Number(rollout.build_done))
      return renderPage(request, reply, 'admin/rollout', {
        title: rollout.name,
        csrf: true,
        rollout,
        required: parseScopes(rollout.required_scopes),
        summary,
        filter,
        filtered,
        first: !after,
        rows: page.rows.map((r) => ({ ...r, link: linkStates.get(r.userId) ?? null })),
        nextHref: page.nextCursor ? `/admin/rollouts/${id}?${filterQuery(filter, { after: page.nextCursor })}` : null,
        firstHref: `/admin/rollouts/${id}?${filterQuery(filter)}`,
        filterQuery: filterQuery(filter),
        apps,
        linkUserId: linkParam,
        building,
        buildDone: Number(rollout.build_done),
        buildTotal,
        buildPct: buildTotal > 0 ? Math.floor((Number(rollout.build_done) / buildTotal) * 100) : 0,
        formatTime,
      })
    },
  )
}
