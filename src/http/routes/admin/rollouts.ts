// The operator dashboard: the rollouts list with the create form, archiving, and a rollout's page
// (coverage summary, the lacking list with its filters and keyset pages, link state per row).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { roleAllows } from '../../../admin/operators.js'
import { listApps } from '../../../apps/apps.js'
import { DomainError, isDomainError } from '../../../errors.js'
import { rolloutSummary } from '../../../rollouts/coverage.js'
import { filterQuery, lackingFilter, listLacking } from '../../../rollouts/lacking.js'
import { latestLinks, linkContextFrom } from '../../../links/links.js'
import { MAX_NAME_LENGTH, archiveRollout, findRollout, listRollouts, startRollout } from '../../../rollouts/rollouts.js'
import { parseScopes } from '../../../scopes.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { Id, IdParams, LackingFilterFields, Matching, Scope, Text } from '../../schemas.js'
import { operatorActor } from './access.js'

const NewRolloutBody = Type.Object({
  // Longer names reach startRollout, which answers with the form and a precise message.
  name: Type.Optional(Text(1000)),
  app_id: Type.Optional(Id),
  scopes: Type.Optional(Type.Array(Scope, { maxItems: 100 })),
})

/** A form field the schema refused, in the words the form shows next to it. */
const FORM_ERRORS: Record<string, { field: 'name' | 'app' | 'scopes'; message: string }> = {
  name: { field: 'name', message: `The name may be at most ${MAX_NAME_LENGTH} characters of plain text.` },
  app_id: { field: 'app', message: 'Choose the target app.' },
  scopes: { field: 'scopes', message: 'Choose required scopes from the target app.' },
}

const RolloutQuery = Type.Object({
  ...LackingFilterFields,
  /** The next-page cursor (lacking.ts encodeCursor). */
  after: Type.Optional(Matching('^[0-9]{1,15}(\\.[0-9]{1,15})?$', 40)),
  /** The user whose link was just issued (highlighted). */
  link: Type.Optional(Id),
})

const rollouts: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  const csrf = { preHandler: app.csrfProtection }
  const viewer = { config: { access: 'viewer' as const } }
  const operator = { config: { access: 'operator' as const } }

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

  app.get(
    '/',
    { ...viewer, schema: { querystring: Type.Object({ app: Type.Optional(Id) }) } },
    async (request, reply) => dashboard(request, reply, { appId: request.query.app }),
  )

  // Validation is attached, not thrown: a refused field re-renders the form with its message.
  app.post(
    '/rollouts',
    { ...operator, ...csrf, schema: { body: NewRolloutBody }, attachValidation: true },
    async (request, reply) => {
      const body = request.body ?? {}
      const input = {
        name: typeof body.name === 'string' ? body.name : '',
        appId: typeof body.app_id === 'number' ? body.app_id : Number.NaN,
        scopes: Array.isArray(body.scopes) ? body.scopes.filter((s) => typeof s === 'string') : [],
      }
      const rejected = (error: { field: string; message: string }) => {
        request.log.warn({ field: error.field, reason: error.message }, 'rollout form rejected')
        const appId = Number.isNaN(input.appId) ? undefined : input.appId
        return dashboard(request, reply, { appId, name: input.name, scopes: input.scopes, error }, 400)
      }
      if (request.validationError) {
        const path = request.validationError.validation[0]?.instancePath.split('/')[1] ?? ''
        return rejected(FORM_ERRORS[path] ?? { field: 'name', message: request.validationError.message })
      }
      try {
        // Returns at once: the membership of every user is measured in the background (build.ts).
        const id = await startRollout(db, input, operatorActor(request), clock.now())
        request.log.info({ rolloutId: id }, 'rollout created')
        app.jobs.kick('rollout-build')
        return reply.redirect(`/admin/rollouts/${id}`, 303)
      } catch (err) {
        if (!isDomainError(err, 'rollout.invalid')) throw err
        return rejected({ field: err.details.field, message: err.message })
      }
    },
  )

  app.post('/rollouts/:id/archive', { ...operator, ...csrf, schema: { params: IdParams } }, async (request, reply) => {
    const { id } = request.params
    const rollout = await findRollout(db, id)
    if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
    const archived = await archiveRollout(db, id, operatorActor(request), clock.now())
    if (archived) request.log.info({ rolloutId: id }, 'rollout archived')
    return reply.redirect(`/admin/rollouts/${id}`, 303)
  })

  app.get(
    '/rollouts/:id',
    { ...viewer, schema: { params: IdParams, querystring: RolloutQuery } },
    async (request, reply) => {
      const { id } = request.params
      const rollout = await findRollout(db, id)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
      const filter = lackingFilter(request.query)
      const { after } = request.query
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
      const canLink = request.operator ? roleAllows(request.operator.role, 'operator') : false
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
        // A viewer exports no links: the page shows their state but never their address.
        rows: page.rows.map((r) => {
          const link = linkStates.get(r.userId) ?? null
          return { ...r, link: link && !canLink ? { ...link, url: null } : link }
        }),
        nextHref: page.nextCursor ? `/admin/rollouts/${id}?${filterQuery(filter, { after: page.nextCursor })}` : null,
        firstHref: `/admin/rollouts/${id}?${filterQuery(filter)}`,
        filterQuery: filterQuery(filter),
        apps,
        linkUserId: request.query.link ?? null,
        building,
        buildDone: Number(rollout.build_done),
        buildTotal,
        buildPct: buildTotal > 0 ? Math.floor((Number(rollout.build_done) / buildTotal) * 100) : 0,
        formatTime,
      })
    },
  )
}

export default rollouts
