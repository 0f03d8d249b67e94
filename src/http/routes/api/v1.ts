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
    // The security headers come from API_HEADERS below, not from helmet (security.ts).
    helmet: { skipRoute: true },
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

  // Set first, so that refusals (401, 403, 429) carry them too.
  const headers = apiHeaders(config.cookieSecure)
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers)
    done()
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

/**
 * Security headers of API answers: JSON that nothing may load as a page, frame or embed. A fixed
 * list set once per request — helmet (security.ts) builds its middleware again on every request,
 * about 5% of an API request's CPU, and its page policy (scripts, styles, forms) means nothing
 * for JSON. The same headers helmet sends, with a CSP that allows nothing.
 */
export function apiHeaders(secure: boolean): Record<string, string> {
  return {
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'origin-agent-cluster': '?1',
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    'x-dns-prefetch-control': 'off',
    'x-download-options': 'noopen',
    'x-frame-options': 'SAMEORIGIN',
    'x-permitted-cross-domain-policies': 'none',
    'x-xss-protection': '0',
    // As security.ts: HSTS only where cookies are secure (plain-HTTP local runs are not pinned).
    ...(secure ? { 'strict-transport-security': 'max-age=31536000; includeSubDomains' } : {}),
  }
}
