// buildApp(options): the whole web application, without listening. server.ts and the tests use it.
// It composes the HTTP layer (src/README.md, "Layers"): infrastructure plugins, then the routes.
import formbody from '@fastify/formbody'
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'
import { createDeps } from './deps.js'
import depsPlugin from './http/plugins/deps.js'
import errorsPlugin from './http/plugins/errors.js'
import healthPlugin from './http/plugins/health.js'
import jobsPlugin from './http/plugins/jobs.js'
import metricsPlugin from './http/plugins/metrics.js'
import securityPlugin from './http/plugins/security.js'
import sessionsPlugin from './http/plugins/sessions.js'
import routes from './http/routes/index.js'

export interface BuildOptions {
  config: Config
  db: Db
  clock: Clock
  /** Background jobs (revocations, rollout builds, report schedule). Tests turn them off and drive them by hand. */
  backgroundJobs?: boolean
  /** Pino destination for tests that assert on log lines. */
  logStream?: NodeJS.WritableStream
  /** Sees every route as it is declared (tests walk the route list to check each declares its access). */
  onRoute?: (route: RouteOptions) => void
}

// Never log tokens, codes, secrets or cookies.
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.client_secret',
  '*.code_verifier',
  '*.code',
  '*.password',
]

/** Removes OAuth `code` and `state` values and link tokens from URLs written to the log. */
export function redactUrlForLog(url: string): string {
  return url
    .replace(/([?&](?:code|state|token)=)[^&]*/g, '$1[redacted]')
    .replace(/(\/reauthorize\/)[^/?]+/, '$1[redacted]')
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config, db, clock } = options
  const app = Fastify({
    trustProxy: config.trustProxy,
    logger: {
      level: config.logLevel,
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: {
        req: (req) => ({ method: req.method, url: redactUrlForLog(req.url), remoteAddress: req.ip }),
      },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    // Large enough for bulk forms, small enough to refuse junk.
    bodyLimit: 1024 * 1024,
  }) as unknown as FastifyInstance

  if (options.onRoute) app.addHook('onRoute', options.onRoute)
  await app.register(depsPlugin, { deps: createDeps({ config, db, clock }) })
  await app.register(errorsPlugin)
  await app.register(securityPlugin)
  await app.register(formbody)
  await app.register(sessionsPlugin)
  await app.register(rateLimit, { global: false })
  await app.register(jobsPlugin, { background: options.backgroundJobs ?? true })
  await app.register(healthPlugin, { background: options.backgroundJobs ?? true })
  await app.register(metricsPlugin)
  await app.register(routes)
  return app
}
