// The Carta apps an operator sees (/admin/apps): users and pending revocations per app, and
// retiring an app (a confirm page, then a CSRF-protected POST).
import type { FastifyInstance } from 'fastify'
import { findAppById, listApps } from '../../../apps/apps.js'
import { retireApp } from '../../../apps/retire.js'
import { DomainError } from '../../../errors.js'
import { activeGrantsByApp } from '../../../grants/queries.js'
import { revocationCountsByApp } from '../../../grants/revocation.js'
import { parseScopes } from '../../../scopes.js'
import { isoDate } from '../../../time.js'
import { renderPage } from '../../render.js'
import { operatorActor } from './access.js'

function idParam(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new DomainError('request.not_found', `not an app id: ${value.slice(0, 20)}`, {})
  return Number(value)
}

export default async function apps(app: FastifyInstance): Promise<void> {
  const { db, clock } = app.deps

  app.get('/apps', async (request, reply) => {
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

  app.get<{ Params: { id: string } }>('/apps/:id/retire', async (request, reply) => {
    const appId = idParam(request.params.id)
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

  app.post<{ Params: { id: string }; Body: { newCurrentAppId?: string } }>(
    '/apps/:id/retire',
    { preHandler: app.csrfProtection },
    async (request, reply) => {
      const appId = idParam(request.params.id)
      const raw = request.body?.newCurrentAppId
      const newCurrentAppId = typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : null
      const result = await retireApp(db, appId, { newCurrentAppId, actor: operatorActor(request), now: clock.now() })
      request.log.info({ appId, newCurrentAppId: result.newCurrentAppId }, 'app retired by operator')
      return reply.redirect(`/admin/apps?retired=${appId}`, 303)
    },
  )
}
