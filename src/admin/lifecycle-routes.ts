// Operator lifecycle pages: the apps list with retirement (/admin/apps) and revoking a user's
// grant (/admin/users/:id/revoke). Confirm pages are GETs; the changes are CSRF-protected POSTs.
import type { FastifyInstance } from 'fastify'
import { findAppById, listApps } from '../carta/apps.js'
import type { Db } from '../db/index.js'
import { retireApp, revokeGrantByOperator } from '../grants/lifecycle.js'
import { processDueRevocations, revocationCountsByApp } from '../grants/revocation.js'
import { parseScopes } from '../scopes.js'
import { DomainError } from '../errors.js'
import { renderPage } from '../web/render.js'
import { operatorActor, requireOperator } from './guard.js'

function idParam(value: string, what: string): number {
  if (!/^\d{1,15}$/.test(value))
    throw new DomainError('request.not_found', `not a ${what.toLowerCase()} id: ${value.slice(0, 20)}`, {})
  return Number(value)
}

/** Active grants per app (index grants_app_status). */
async function activeUsersByApp(db: Db): Promise<Map<number, number>> {
  const rows = await db
    .selectFrom('grants')
    .select((eb) => ['app_id', eb.fn.countAll().as('n')])
    .where('status', '=', 'active')
    .groupBy('app_id')
    .execute()
  return new Map(rows.map((r) => [r.app_id, Number(r.n)]))
}

async function userSummary(db: Db, userId: number) {
  const user = await db
    .selectFrom('end_users')
    .leftJoin('grants', 'grants.id', 'end_users.active_grant_id')
    .leftJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select([
      'end_users.id',
      'end_users.name',
      'end_users.email',
      'end_users.carta_user_id',
      'end_users.status',
      'grants.id as grant_id',
      'grants.status as grant_status',
      'grants.granted_scopes',
      'grants.created_at as granted_at',
      'oauth_apps.name as app_name',
    ])
    .where('end_users.id', '=', userId)
    .executeTakeFirst()
  if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
  const revocations = await db
    .selectFrom('token_revocations')
    .innerJoin('grants', 'grants.id', 'token_revocations.grant_id')
    .select([
      'token_revocations.id',
      'token_revocations.grant_id',
      'token_revocations.token_type_hint',
      'token_revocations.status',
      'token_revocations.attempts',
      'token_revocations.last_error',
      'token_revocations.next_attempt_at',
    ])
    .where('grants.user_id', '=', userId)
    .where('token_revocations.status', 'in', ['pending', 'failed'])
    .orderBy('token_revocations.id', 'desc')
    .limit(20)
    .execute()
  return { ...user, scopes: parseScopes(user.granted_scopes), revocations }
}

export default async function lifecycleRoutes(app: FastifyInstance): Promise<void> {
  const { db, clock } = app.deps

  app.get('/admin/apps', { preHandler: requireOperator }, async (request, reply) => {
    const [apps, users, revocations] = await Promise.all([
      listApps(db),
      activeUsersByApp(db),
      revocationCountsByApp(db),
    ])
    return renderPage(request, reply, 'admin/apps', {
      title: 'Carta apps',
      apps: apps.map((a) => ({
        ...a,
        scopeList: parseScopes(a.scopes),
        users: users.get(a.id) ?? 0,
        revocations: revocations.get(a.id) ?? { pending: 0, failed: 0 },
        retiredAtIso: a.retired_at ? new Date(Number(a.retired_at)).toISOString().slice(0, 10) : null,
      })),
    })
  })

  app.get<{ Params: { id: string } }>(
    '/admin/apps/:id/retire',
    { preHandler: requireOperator },
    async (request, reply) => {
      const target = await findAppById(db, idParam(request.params.id, 'App'))
      if (!target) throw new DomainError('app.not_found', 'There is no such app.', { appId: Number(request.params.id) })
      if (target.status === 'retired')
        throw new DomainError('app.already_retired', `${target.name} was already retired.`, { name: target.name })
      const others = (await listApps(db)).filter(
        (a) => a.environment === target.environment && a.status === 'active' && a.id !== target.id,
      )
      const users = (await activeUsersByApp(db)).get(target.id) ?? 0
      return renderPage(request, reply, 'admin/apps-retire', {
        title: `Retire ${target.name}`,
        csrf: true,
        target,
        others,
        users,
        blocked: target.is_current === 1 && others.length === 0,
      })
    },
  )

  app.post<{ Params: { id: string }; Body: { newCurrentAppId?: string } }>(
    '/admin/apps/:id/retire',
    { preHandler: [requireOperator, app.csrfProtection] },
    async (request, reply) => {
      const appId = idParam(request.params.id, 'App')
      const raw = request.body?.newCurrentAppId
      const newCurrentAppId = typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : null
      const result = await retireApp(db, appId, { newCurrentAppId, actor: operatorActor(request), now: clock.now() })
      request.log.info({ appId, newCurrentAppId: result.newCurrentAppId }, 'app retired by operator')
      return reply.redirect(`/admin/apps?retired=${appId}`, 303)
    },
  )

  app.get<{ Params: { id: string } }>(
    '/admin/users/:id/revoke',
    { preHandler: requireOperator },
    async (request, reply) => {
      const user = await userSummary(db, idParam(request.params.id, 'User'))
      const revocable = user.grant_id !== null && (user.grant_status === 'active' || user.grant_status === 'broken')
      return renderPage(request, reply, 'admin/revoke', { title: 'Revoke access', csrf: true, user, revocable })
    },
  )

  app.post<{ Params: { id: string } }>(
    '/admin/users/:id/revoke',
    { preHandler: [requireOperator, app.csrfProtection] },
    async (request, reply) => {
      const userId = idParam(request.params.id, 'User')
      const result = await revokeGrantByOperator(db, userId, operatorActor(request), clock.now())
      // Immediate attempt after the commit; what fails stays queued for the worker's retries.
      const sent = await processDueRevocations({ ...app.deps, log: request.log }, { grantId: result.grantId })
      request.log.info({ userId, grantId: result.grantId, ...sent }, 'grant revoked by operator')
      return renderPage(request, reply, 'admin/revoke-done', {
        title: 'Access revoked',
        user: await userSummary(db, userId),
        sent,
      })
    },
  )
}
