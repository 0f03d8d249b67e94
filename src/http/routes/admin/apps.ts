// The Carta apps an operator sees (/admin/apps): users and pending revocations per app, and
// retiring an app (a confirm page, then a CSRF-protected POST).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findAppById, listApps } from '../../../apps/apps.js'
import { retireApp, setSuccessor } from '../../../apps/retire.js'
import { DomainError } from '../../../errors.js'
import { activeGrantsByApp } from '../../../grants/queries.js'
import { revocationCountsByApp } from '../../../grants/revocation.js'
import { parseScopes } from '../../../scopes.js'
import { isoDate } from '../../../time.js'
import { renderPage } from '../../render.js'
import { Id, IdParams } from '../../schemas.js'
import { operatorActor } from './access.js'

const RetireBody = Type.Object({
  /** The active app of the same environment that becomes current (needed when retiring the current app). */
  newCurrentAppId: Type.Optional(Id),
  /** Any other app: the active app its users reconnect with (default: the environment's current app). */
  successorAppId: Type.Optional(Id),
})

const apps: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock } = app.deps

  app.get('/apps', { config: { access: 'viewer' } }, async (request, reply) => {
    const [apps, users, revocations] = await Promise.all([
      listApps(db),
      activeGrantsByApp(db),
      revocationCountsByApp(db),
    ])
    return renderPage(request, reply, 'admin/apps', {
      title: 'Carta apps',
      apps: apps.map((a) => ({
        ...a,
        successorName: apps.find((s) => s.id === a.successor_app_id)?.name ?? null,
        scopeList: parseScopes(a.scopes),
        users: users.get(a.id) ?? 0,
        revocations: revocations.get(a.id) ?? { pending: 0, failed: 0 },
        retiredAtIso: a.retired_at ? isoDate(Number(a.retired_at)) : null,
      })),
    })
  })

  app.get('/apps/:id/retire', { config: { access: 'admin' }, schema: { params: IdParams } }, async (request, reply) => {
    const appId = request.params.id
    const target = await findAppById(db, appId)
    if (!target) throw new DomainError('app.not_found', `There is no app ${appId}.`, { appId })
    if (target.status === 'retired')
      throw new DomainError('app.already_retired', `${target.name} was already retired.`, { name: target.name })
    const all = await listApps(db)
    const others = all.filter(
      (a) => a.environment === target.environment && a.status === 'active' && a.id !== target.id,
    )
    // Any active app may succeed a non-current app; the environment's current one is proposed.
    const successors = all.filter((a) => a.status === 'active' && a.id !== target.id)
    const users = (await activeGrantsByApp(db)).get(target.id) ?? 0
    return renderPage(request, reply, 'admin/apps-retire', {
      title: `Retire ${target.name}`,
      csrf: true,
      target,
      others,
      successors,
      proposed: successors.find((a) => a.environment === target.environment && a.is_current === 1)?.id ?? null,
      users,
      blocked: target.is_current === 1 && others.length === 0,
    })
  })

  app.post(
    '/apps/:id/retire',
    { config: { access: 'admin' }, preHandler: app.csrfProtection, schema: { params: IdParams, body: RetireBody } },
    async (request, reply) => {
      const appId = request.params.id
      const newCurrentAppId = request.body?.newCurrentAppId ?? null
      const successorAppId = request.body?.successorAppId ?? null
      const result = await retireApp(db, appId, {
        newCurrentAppId,
        successorAppId,
        actor: operatorActor(request),
        now: clock.now(),
      })
      request.log.info({ appId, newCurrentAppId: result.newCurrentAppId }, 'app retired by operator')
      return reply.redirect(`/admin/apps?retired=${appId}`, 303)
    },
  )

  // The successor of an app already retired (from the apps file, or before successors existed).
  app.get(
    '/apps/:id/successor',
    { config: { access: 'admin' }, schema: { params: IdParams } },
    async (request, reply) => {
      const appId = request.params.id
      const all = await listApps(db)
      const target = all.find((a) => a.id === appId)
      if (!target) throw new DomainError('app.not_found', `There is no app ${appId}.`, { appId })
      if (target.status !== 'retired') return reply.redirect(`/admin/apps/${appId}/retire`, 303)
      const successors = all.filter((a) => a.status === 'active')
      return renderPage(request, reply, 'admin/apps-successor', {
        title: `Successor of ${target.name}`,
        csrf: true,
        target,
        successors,
        proposed:
          target.successor_app_id ??
          successors.find((a) => a.environment === target.environment && a.is_current === 1)?.id ??
          null,
      })
    },
  )

  app.post(
    '/apps/:id/successor',
    {
      preHandler: app.csrfProtection,
      config: { access: 'admin' },
      schema: { params: IdParams, body: Type.Object({ successorAppId: Id }) },
    },
    async (request, reply) => {
      const appId = request.params.id
      const { successorAppId } = request.body
      await setSuccessor(db, appId, successorAppId, { actor: operatorActor(request), now: clock.now() })
      request.log.info({ appId, successorAppId }, 'successor of a retired app set')
      return reply.redirect('/admin/apps', 303)
    },
  )
}

export default apps
