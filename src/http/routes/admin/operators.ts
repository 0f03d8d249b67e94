// /admin/operators, for admins: every operator account with its role, how it signs in and when it
// last did, and the forms that change a role or disable / enable an account (audited in
// src/admin/operators.ts). Roles mapped from the identity provider's claim are rewritten at each
// single sign-on, so the page says so.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { listOperators, updateOperator } from '../../../admin/operators.js'
import { OPERATOR_ROLES } from '../../../admin/tables.js'
import { DomainError } from '../../../errors.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { IdParams } from '../../schemas.js'
import { operatorActor } from './access.js'

const UpdateBody = Type.Object({
  action: Type.Enum(['role', 'disable', 'enable']),
  role: Type.Optional(Type.Enum([...OPERATOR_ROLES])),
})

const operators: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  const adminOnly = { access: 'admin' as const }

  app.get(
    '/operators',
    { config: adminOnly, schema: { querystring: Type.Object({ changed: Type.Optional(Type.Enum(['1'])) }) } },
    async (request, reply) => {
      const rows = await listOperators(db)
      return renderPage(request, reply, 'admin/operators', {
        title: 'Operators',
        csrf: true,
        roles: OPERATOR_ROLES,
        selfId: request.operator?.id ?? null,
        changed: request.query.changed === '1',
        roleFromClaim: config.operatorSso?.roleClaim ?? null,
        operators: rows.map((o) => ({
          id: o.id,
          username: o.username,
          role: o.role,
          sso: o.oidc_subject !== null,
          disabled: o.disabled_at !== null,
          lastSignIn: o.last_sign_in_at === null ? null : formatTime(Number(o.last_sign_in_at)),
          created: formatTime(Number(o.created_at)),
        })),
      })
    },
  )

  app.post(
    '/operators/:id',
    { config: adminOnly, preHandler: app.csrfProtection, schema: { params: IdParams, body: UpdateBody } },
    async (request, reply) => {
      const { id } = request.params
      const { action, role } = request.body
      if (action === 'role' && role === undefined)
        throw new DomainError('request.invalid', 'Choose a role.', { title: 'Invalid role' })
      const changed = await updateOperator(
        db,
        {
          id,
          actorId: request.operator?.id ?? 0,
          actor: operatorActor(request),
          ...(action === 'role' ? { role } : { disabled: action === 'disable' }),
        },
        clock.now(),
      )
      request.log.info({ operator: changed.username, action, role: changed.role }, 'operator account changed')
      return reply.redirect('/admin/operators?changed=1', 303)
    },
  )
}

export default operators
