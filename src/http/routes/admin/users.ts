// An end user seen by an operator: the user page (identity, grants, memberships, links, audit)
// and revoking their grant (a confirm page, then a CSRF-protected POST).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { revokeSummary, userPageData } from '../../../admin/user-page.js'
import { DomainError } from '../../../errors.js'
import { revokeGrantByOperator } from '../../../grants/lifecycle.js'
import { processDueRevocations } from '../../../grants/revocation.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { IdParams, Matching, Text } from '../../schemas.js'
import { Type } from 'typebox'
import { decodeUserCursor, encodeUserCursor, searchUsers } from '../../../users/search.js'
import { operatorActor } from './access.js'

const users: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock } = app.deps

  const schema = { params: IdParams }
  const viewer = { config: { access: 'viewer' as const } }
  // Revoking a grant is an admin's decision.
  const admin = { config: { access: 'admin' as const } }

  const UsersQuery = Type.Object({
    q: Type.Optional(Text(200)),
    by: Type.Optional(Type.Enum(['email', 'name', 'carta'])),
    after: Type.Optional(Matching('^[A-Za-z0-9_-]{1,700}$', 700)),
  })

  // Every end user, searched by email, name or Carta id, with grant status; keyset pages of 50.
  app.get('/users', { config: { access: 'viewer' }, schema: { querystring: UsersQuery } }, async (request, reply) => {
    const q = request.query.q?.trim() ?? ''
    const by = request.query.by ?? 'email'
    const after = request.query.after === undefined ? null : decodeUserCursor(request.query.after)
    if (after === null && request.query.after !== undefined)
      throw new DomainError('request.invalid', 'That page link is malformed.', { title: 'Invalid page' })
    const page = await searchUsers(db, { q, by, after, limit: 50 })
    const params = (extra: Record<string, string>) => {
      const p = new URLSearchParams()
      if (q) p.set('q', q)
      if (q) p.set('by', by)
      for (const [k, v] of Object.entries(extra)) p.set(k, v)
      const text = p.toString()
      return text ? `?${text}` : ''
    }
    return renderPage(request, reply, 'admin/users', {
      title: 'Users',
      q,
      by,
      rows: page.rows,
      first: !after,
      firstHref: `/admin/users${params({})}`,
      nextHref: page.next ? `/admin/users${params({ after: encodeUserCursor(page.next) })}` : null,
      formatTime,
    })
  })

  app.get('/users/:id', { ...viewer, schema }, async (request, reply) => {
    const { id } = request.params
    const data = await userPageData(db, id, clock.now())
    if (!data) throw new DomainError('user.not_found', `There is no end user ${id}.`, { userId: id })
    const title = data.user.email ?? data.user.name ?? data.user.cartaUserId ?? `User ${id}`
    return renderPage(request, reply, 'admin/user', { title, ...data, formatTime })
  })

  app.get('/users/:id/revoke', { ...admin, schema }, async (request, reply) => {
    const user = await revokeSummary(db, request.params.id)
    const revocable = user.grant_id !== null && (user.grant_status === 'active' || user.grant_status === 'broken')
    return renderPage(request, reply, 'admin/revoke', { title: 'Revoke access', csrf: true, user, revocable })
  })

  app.post('/users/:id/revoke', { ...admin, preHandler: app.csrfProtection, schema }, async (request, reply) => {
    const userId = request.params.id
    const result = await revokeGrantByOperator(app.deps, userId, operatorActor(request), clock.now())
    // Immediate attempt after the commit; what fails stays queued for the worker's retries.
    const sent = await processDueRevocations({ ...app.deps, log: request.log }, { grantId: result.grantId })
    request.log.info({ userId, grantId: result.grantId, ...sent }, 'grant revoked by operator')
    return renderPage(request, reply, 'admin/revoke-done', {
      title: 'Access revoked',
      user: await revokeSummary(db, userId),
      sent,
    })
  })
}

export default users
