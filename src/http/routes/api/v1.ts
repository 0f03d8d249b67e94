// /api/v1: an encapsulated plugin with its own access hook (auth.ts: API keys only), its own
// error handler and not-found handler (problem+json, problem.ts), a per-key rate limit and small
// body limits. See src/README.md, "Where each kind of change goes → A new API route".
import type { FastifyError, FastifyInstance } from 'fastify'
import { type ApiRouteConfig, apiGuard } from './auth.js'
import { problemFor, problemType, sendProblem } from './problem.js'
import connectSessions from './connect-sessions.js'
import rollouts from './rollouts.js'
import users from './users.js'

export default async function v1(app: FastifyInstance): Promise<void> {
  const { config } = app.deps
  const route: ApiRouteConfig = (permission) => ({
    apiPermission: permission,
    // Runs after the guard (route hooks follow the plugin's), so the key is known: one bucket per key.
    // Counted in the database (http/plugins/rate-limit-store.ts), so every instance shares the
    // key's budget and together they never admit more than it: each instance claims slices of the
    // window's budget with one upsert (one per request near the limit, one per dozens of requests
    // well below it) rather than writing every request. A local bucket synced now and then would
    // be cheaper still but lets N instances overshoot; an API that hands out Carta tokens is better
    // served by a limit that holds.
    rateLimit: {
      max: config.api.ratePerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => `api-key:${request.apiCaller?.keyId ?? request.ip}`,
    },
  })

  app.addHook('onRequest', apiGuard)
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const problem = problemFor(error, request)
    if (!problem) {
      request.log.error({ err: error }, 'unhandled error')
      return sendProblem(reply, {
        type: problemType('internal'),
        title: 'Something went wrong',
        status: 500,
        detail: 'The error has been logged. Please try again in a moment.',
        code: 'internal',
      })
    }
    const level = problem.status === 404 ? 'info' : 'warn'
    request.log[level]({ status: problem.status, code: problem.code, reason: error.message }, problem.title)
    return sendProblem(reply, problem)
  })
  app.setNotFoundHandler(async (request, reply) => {
    request.log.info('not found')
    return sendProblem(reply, {
      type: problemType('request.not_found'),
      title: 'Not found',
      status: 404,
      detail: 'There is no API route at this address.',
      code: 'request.not_found',
    })
  })

  await app.register(users, { route })
  await app.register(connectSessions, { route })
  await app.register(rollouts, { route })
}
