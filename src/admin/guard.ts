// Operator-only routes: a session that is not an operator's (e.g. an end user's) never gets in.
import type { FastifyReply, FastifyRequest } from 'fastify'

/** preHandler for every /admin route except sign-in: unsigned visitors go to the sign-in page. */
export async function requireOperator(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  if (request.session?.operatorId) return
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
