// Sending a browser to Carta (the connect flow, src/flows/connect.ts): the flow's state is bound
// to this browser's session, so the callback only completes in the browser that started it.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type StartOptions, startConnect } from '../flows/connect.js'

export async function sendToCarta(
  request: FastifyRequest,
  reply: FastifyReply,
  options: Omit<StartOptions, 'sessionId'>,
): Promise<FastifyReply> {
  // Saving the session gives it a stable id (saveUninitialized is off) to bind the state to.
  request.session.connectStartedAt = request.server.deps.clock.now()
  const url = await startConnect(request.server.deps, { ...options, sessionId: request.session.sessionId }, request.log)
  return reply.redirect(url.href, 303)
}
