// The operator dashboard: the rollouts list with the create form, archiving, and a rollout's page
// (coverage summary, the lacking list with its filters and keyset pages, link state per row).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { roleAllows } from '../../../admin/operators.js'
import { listApps } from '../../../apps/apps.js'
import { DomainError, isDomainError } from '../../../errors.js'
import {
  COVERAGE_DEFINITION,
  coveragePercent,
  formatCoverage,
  listCovered,
  rolloutSummary,
} from '../../../rollouts/coverage.js'
import { filterQuery, lackingFilter, listLacking } from '../../../rollouts/lacking.js'
import { latestLinks, linkContextFrom } from '../../../links/links.js'
import {
  MAX_NAME_LENGTH,
  archiveRollout,
  findRollout,
  findSameActiveRollout,
  listRollouts,
  startRollout,
  unarchiveRollout,
} from '../../../rollouts/rollouts.js'
import { parseScopes } from '../../../scopes.js'
import { formatTime } from '../../../time.js'
import { rolloutMailPanel } from '../../../mail/panel.js'
import { noStore, renderPage } from '../../render.js'
import { Id, IdParams, LackingFilterFields, Matching, Scope, Text } from '../../schemas.js'
import { operatorActor } from './access.js'

const NewRolloutBody = Type.Object({
  // Longer names reach startRollout, which answers with the form and a precise message.
  name: Type.Optional(Text(1000)),
  app_id: Type.Optional(Id),
  scopes: Type.Optional(Type.Array(Scope, { maxItems: 100 })),
  /** The form's checkboxes: "<app id>:<scope>", one fieldset per app; only the chosen app's count. */
  app_scopes: Type.Optional(
    Type.Array(Matching('^[0-9]{1,10}:[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,200}$', 211), { maxItems: 500 }),
  ),
  /** Set by the duplicate warning: create it although an identical active rollout exists. */
  confirm_duplicate: Type.Optional(Type.Literal('1')),
})

/** A form field the schema refused, in the words the form shows next to it. */
const FORM_ERRORS: Record<string, { field: 'name' | 'app' | 'scopes'; message: string }> = {
  name: { field: 'name', message: `The name may be at most ${MAX_NAME_LENGTH} characters of plain text.` },
  app_id: { field: 'app', message: 'Choose the target app.' },
  scopes: { field: 'scopes', message: 'Choose required scopes from the target app.' },
  app_scopes: { field: 'scopes', message: 'Choose required scopes from the target app.' },
  confirm_duplicate: { field: 'name', message: 'Press Create rollout again to confirm.' },
}

/**
 * The required scopes the form chose: the "<app id>:<scope>" boxes of the chosen app (the other
 * apps' fieldsets are ignored, so what was selected is what is created), else plain `scopes`.
 */
function chosenScopes(body: { app_id?: number; scopes?: string[]; app_scopes?: string[] }): string[] {
  if (Array.isArray(body.app_scopes)) {
    const prefix = `${body.app_id}:`
    return body.app_scopes.filter((v) => v.startsWith(prefix)).map((v) => v.slice(prefix.length))
  }
  return Array.isArray(body.scopes) ? body.scopes.filter((s) => typeof s === 'string') : []
}

const RolloutQuery = Type.Object({
  ...LackingFilterFields,
  /** The next-page cursor (lacking.ts encodeCursor). */
  after: Type.Optional(Matching('^[0-9]{1,15}(\\.[0-9]{1,15})?$', 40)),
  /** The user whose link was just issued (highlighted). */
  link: Type.Optional(Id),
  /** The email campaign just created (its notice). */
  campaign: Type.Optional(Id),
})

const rollouts: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  const csrf = { preHandler: app.csrfProtection }
  const viewer = { config: { access: 'viewer' as const } }
  const operator = { config: { access: 'operator' as const } }

  const dashboard = async (
    request: FastifyRequest,
    reply: FastifyReply,
    form: {
      appId?: number
      name?: string
      scopes?: string[]
      error?: { field: string; message: string }
      duplicate?: { id: number; name: string }
    },
    status = 200,
  ) => {
    const [rollouts, apps] = await Promise.all([listRollouts(db), listApps(db)])
    const activeApps = apps.filter((a) => a.status === 'active')
    const defaultApp =
      activeApps.find((a) => a.environment === config.defaultEnvironment && a.is_current === 1) ?? activeApps[0]
    const target = activeApps.find((a) => a.id === form.appId) ?? defaultApp
    return renderPage(
      request,
      reply,
      'admin/index',
      {
        title: 'Rollouts',
        csrf: true,
        active: rollouts.filter((r) => r.status === 'active'),
        archived: rollouts.filter((r) => r.status === 'archived'),
        apps: activeApps.map((a) => ({ ...a, scopeList: parseScopes(a.scopes) })),
        target: target ?? null,
        // The chosen app's boxes as submitted; every other app's boxes all ticked (its default).
        checkedFor: (a: { id: number; scopeList: string[] }) =>
          a.id === target?.id && form.scopes ? form.scopes : a.scopeList,
        name: form.name ?? '',
        error: form.error ?? null,
        duplicate: form.duplicate ?? null,
        parseScopes,
        formatTime,
        coverageDefinition: COVERAGE_DEFINITION,
        coveragePercent,
        formatCoverage,
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
        scopes: chosenScopes(body),
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
        if (body.confirm_duplicate !== '1') {
          const same = await findSameActiveRollout(db, input)
          if (same) {
            request.log.info({ rolloutId: same.id }, 'new rollout duplicates an active one: asked to confirm')
            const appId = input.appId
            return dashboard(request, reply, { appId, name: input.name, scopes: input.scopes, duplicate: same }, 409)
          }
        }
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

  const existing = async (id: number) => {
    const rollout = await findRollout(db, id)
    if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
    return rollout
  }
  const confirmArchive = async (request: FastifyRequest, reply: FastifyReply, id: number) => {
    const rollout = await existing(id)
    if (rollout.status !== 'active') return reply.redirect(`/admin/rollouts/${id}`, 303)
    return renderPage(request, reply, 'admin/rollout-archive', {
      title: `Archive ${rollout.name}?`,
      csrf: true,
      rollout,
    })
  }

  // Archiving asks first (this page); the POST archives only with the page's confirm field.
  app.get('/rollouts/:id/archive', { config: { access: 'operator' }, schema: { params: IdParams } }, (request, reply) =>
    confirmArchive(request, reply, request.params.id),
  )

  app.post(
    '/rollouts/:id/archive',
    {
      ...csrf,
      config: { access: 'operator' },
      schema: { params: IdParams, body: Type.Object({ confirm: Type.Optional(Type.Literal('yes')) }) },
    },
    async (request, reply) => {
      const { id } = request.params
      if (request.body?.confirm !== 'yes') {
        request.log.info({ rolloutId: id }, 'archive without confirmation: asking first')
        return confirmArchive(request, reply, id)
      }
      await existing(id)
      const archived = await archiveRollout(db, id, operatorActor(request), clock.now())
      if (archived) request.log.info({ rolloutId: id }, 'rollout archived')
      return reply.redirect(`/admin/rollouts/${id}`, 303)
    },
  )

  // Undoes an archive: the rollout is active again and its users are measured afresh.
  app.post(
    '/rollouts/:id/unarchive',
    { ...csrf, config: { access: 'operator' }, schema: { params: IdParams } },
    async (request, reply) => {
      const { id } = request.params
      await existing(id)
      // A retired target app refuses with the rollout.invalid page (400), nothing changed.
      const restored = await unarchiveRollout(db, id, operatorActor(request), clock.now())
      if (restored) {
        request.log.info({ rolloutId: id }, 'rollout unarchived')
        app.jobs.kick('rollout-build')
      }
      return reply.redirect(`/admin/rollouts/${id}`, 303)
    },
  )

  // The "done" view: covered users and when they came over (views/admin/rollout-done.eta).
  app.get(
    '/rollouts/:id/done',
    {
      config: { access: 'viewer' },
      schema: {
        params: IdParams,
        querystring: Type.Object({ before: Type.Optional(Matching('^[0-9]{1,16}\\.[0-9]{1,10}$', 30)) }),
      },
    },
    async (request, reply) => {
      const { id } = request.params
      const rollout = await existing(id)
      const cursor = request.query.before?.split('.').map(Number)
      if (cursor && cursor[1]! > 2_147_483_647)
        throw new DomainError('request.invalid', 'That page link is malformed.', { title: 'Invalid page' })
      const before = cursor ? { at: cursor[0]!, userId: cursor[1]! } : null
      const [summary, page] = await Promise.all([
        rolloutSummary(db, id, rollout.required_scopes),
        listCovered(db, id, { before, limit: 50 }),
      ])
      return renderPage(request, reply, 'admin/rollout-done', {
        title: `${rollout.name}: done`,
        rollout,
        summary,
        rows: page.rows,
        first: !before,
        nextHref: page.next ? `/admin/rollouts/${id}/done?before=${page.next.at}.${page.next.userId}` : null,
        formatTime,
        formatCoverage,
      })
    },
  )

  app.get(
    '/rollouts/:id',
    { ...viewer, schema: { params: IdParams, querystring: RolloutQuery } },
    async (request, reply) => {
      noStore(reply) // the page shows live links
      const { id } = request.params
      const rollout = await findRollout(db, id)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${id}.`, { rolloutId: id })
      const filter = lackingFilter(request.query)
      const { after } = request.query
      const [summary, page, apps, mail] = await Promise.all([
        rolloutSummary(db, id, rollout.required_scopes),
        listLacking(db, id, filter, after ? { after } : {}),
        listApps(db),
        rolloutMailPanel(db, config, id, filter, clock.now()),
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
        linkUserName: request.query.link ? await personName(db, request.query.link) : null,
        mail: { ...mail, justCreated: request.query.campaign ?? null },
        building,
        buildDone: Number(rollout.build_done),
        buildTotal,
        buildPct: buildTotal > 0 ? Math.floor((Number(rollout.build_done) / buildTotal) * 100) : 0,
        formatTime,
        coverageDefinition: COVERAGE_DEFINITION,
        formatCoverage,
      })
    },
  )
}

export default rollouts

/** How notices name a person: email, else name, else Carta id, else "user #id". */
async function personName(db: import('../../../db/index.js').Db, userId: number): Promise<string> {
  const u = await db
    .selectFrom('end_users')
    .select(['email', 'name', 'carta_user_id'])
    .where('id', '=', userId)
    .executeTakeFirst()
  return u?.email ?? u?.name ?? u?.carta_user_id ?? `user #${userId}`
}
