// The Carta apps an operator sees (/admin/apps): users and pending revocations per app, and
// retiring an app (a confirm page, then a CSRF-protected POST).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findAppById, listApps } from '../../../apps/apps.js'
import { retireApp } from '../../../apps/retire.js'
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
    const others = (await listApps(db)).filter(
      (a) => a.environment === target.environment && a.status === 'active' && a.id !== target.id,
    )
    const users = (await activeGrantsByApp(db)).get(target.id) ?? 0
    return renderPage(request, reply, 'admin/apps-retire', {
      title: `Retire ${target.name}`,
      csrf: true,
      target,
      others,
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
      const result = await retireApp(db, appId, { newCurrentAppId, actor: operatorActor(request), now: clock.now() })
      request.log.info({ appId, newCurrentAppId: result.newCurrentAppId }, 'app retired by operator')
      return reply.redirect(`/admin/apps?retired=${appId}`, 303)
    },
  )
}

export default apps
