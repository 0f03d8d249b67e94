// Who may use an /admin route. Each route may declare it in its config (`access`); the default is
// a signed-in operator, and the sign-in routes declare 'public'. The admin plugin (index.ts) runs
// guard() before every one of its routes. Routes already say which role they need ('viewer' reads,
// 'operator' acts on rollouts and links, 'admin' manages apps, keys and operators); until operator
// roles exist every signed-in operator holds all three.
import type { FastifyReply, FastifyRequest } from 'fastify'

/** Who may use an /admin route. */
export type Access = 'public' | 'viewer' | 'operator' | 'admin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Operator routes: who may use this route (default 'operator'). */
    access?: Access
  }
}

export async function guard(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const access = request.routeOptions.config.access ?? 'operator'
  if (access === 'public' || request.session?.operatorId) return
  request.log.info('admin page without an operator session')
  // Only GET targets are worth coming back to; a POST's target would be replayed as a GET.
  const next = request.method === 'GET' ? request.url : '/admin'
  // Returning the reply tells Fastify the request is answered: the handler never runs.
  return reply.redirect(`/admin/sign-in?next=${encodeURIComponent(next)}`, 303)
}

/** Actor string for audit events written by the signed-in operator. */
export function operatorActor(request: FastifyRequest): string {
  return `operator:${request.session.operatorName ?? request.session.operatorId}`
}
