// Who may use an /admin route, decided in ONE place: guard(), the admin plugin's onRequest hook
// (index.ts), before every one of its routes (src/README.md, "The HTTP layer"). Each route
// declares `config.access`: 'public' (sign-in), or the least role it needs — 'viewer' reads,
// 'operator' acts on rollouts, links, campaigns and imports, 'admin' manages apps, grants, API
// keys, webhooks and operators. A route that declares nothing is for admins only (closed by
// default), and test/http/routes/admin/access.test.ts fails until it declares its rule.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { findOperator, roleAllows } from '../../../admin/operators.js'
import type { OperatorRole } from '../../../admin/tables.js'
import { recordAudit } from '../../../audit/events.js'
import { DomainError } from '../../../errors.js'

/** Who may use an /admin route. */
export type Access = 'public' | OperatorRole

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Operator routes: who may use this route (undeclared: admins only). */
    access?: Access
  }
  interface FastifyRequest {
    /** The signed-in operator on /admin routes once the guard let the request through. */
    operator?: SignedInOperator | null
  }
}

export interface SignedInOperator {
  id: number
  username: string
  role: OperatorRole
}

export async function guard(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const declared = request.routeOptions.config.access
  if (declared === 'public') return
  const { db, clock } = request.server.deps
  const id = request.session?.operatorId
  // The account is read on every request, so a new role or a disabled account applies at once.
  const row = id ? await findOperator(db, id) : undefined
  if (!row || row.disabled_at !== null) {
    if (row) {
      request.log.warn({ operator: row.username }, 'disabled operator session ended')
      await request.session.destroy()
    } else request.log.info('admin page without an operator session')
    // Only GET targets are worth coming back to; a POST's target would be replayed as a GET.
    const next = request.method === 'GET' ? request.url : '/admin'
    // Returning the reply tells Fastify the request is answered: the handler never runs.
    return reply.redirect(`/admin/sign-in?next=${encodeURIComponent(next)}`, 303)
  }
  const operator: SignedInOperator = { id: row.id, username: row.username, role: row.role }
  request.operator = operator
  // An unknown /admin address is a 404 page for anyone signed in, not a refusal.
  if (request.is404) return
  const needed: OperatorRole = declared ?? 'admin'
  if (declared === undefined) request.log.warn({ route: request.routeOptions.url }, 'admin route declares no access')
  if (roleAllows(operator.role, needed)) return
  const route = request.routeOptions.url ?? ''
  request.log.warn({ operator: operator.username, role: operator.role, needed, route }, 'operator role refused')
  await recordAudit(db, clock.now(), {
    type: 'access.refused',
    actor: `operator:${operator.username}`,
    details: { method: request.method, route, role: operator.role, needed },
  })
  throw new DomainError('operator.forbidden', `${operator.username} (${operator.role}) needs ${needed}.`, {
    role: operator.role,
    needed,
  })
}

/** Actor string for audit events written by the signed-in operator. */
export function operatorActor(request: FastifyRequest): string {
  return `operator:${request.operator?.username ?? request.session.operatorName ?? request.session.operatorId}`
}
