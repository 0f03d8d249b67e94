// buildApp(options): the whole web application, without listening. server.ts and the tests use it.
// It composes the HTTP layer (src/README.md, "Layers"): infrastructure plugins, then the routes.
import formbody from '@fastify/formbody'
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'
import { createDeps } from './deps.js'
import { prettyStream, usePrettyLogs } from './log-pretty.js'
import depsPlugin from './http/plugins/deps.js'
import errorsPlugin from './http/plugins/errors.js'
import healthPlugin from './http/plugins/health.js'
import jobsPlugin from './http/plugins/jobs.js'
import { databaseRateLimitStore } from './http/plugins/rate-limit-store.js'
import publicHostPlugin from './http/plugins/public-host.js'
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
    .replace(/(\/(?:reauthorize|connect\/session)\/)[^/?]+/, '$1[redacted]')
}

export async function buildApp(options: BuildOptions): Promise<FastifyInstance> {
  const { config, db, clock } = options
  // Development on a terminal: one readable line per request (log-pretty.ts); JSON otherwise.
  const pretty = !options.logStream && usePrettyLogs(config)
  const app = Fastify({
    trustProxy: config.trustProxy,
    logger: {
      level: config.logLevel,
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: {
        req: (req) => ({ method: req.method, url: redactUrlForLog(req.url), remoteAddress: req.ip }),
      },
      ...(options.logStream ? { stream: options.logStream } : pretty ? { stream: prettyStream() } : {}),
    },
    // Large enough for bulk forms, small enough to refuse junk (BODY_LIMIT_BYTES).
    bodyLimit: config.http.bodyLimitBytes,
    // Slow clients (README, "Settings"): the whole request (headers and body) must arrive within
    // REQUEST_TIMEOUT_MS, else Node answers 408 and closes the connection; a socket idle for
    // CONNECTION_TIMEOUT_MS is closed; an idle keep-alive connection after KEEP_ALIVE_TIMEOUT_MS.
    requestTimeout: config.http.requestTimeoutMs,
    connectionTimeout: config.http.connectionTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    // Node checks the request timeout on this interval (default 30 s): check every second so a
    // trickling body is cut close to the limit, not up to 30 s later.
    http: {
      requestTimeout: config.http.requestTimeoutMs,
      headersTimeout: Math.min(60_000, config.http.requestTimeoutMs),
      connectionsCheckingInterval: 1_000,
    },
  }) as unknown as FastifyInstance

  if (options.onRoute) app.addHook('onRoute', options.onRoute)
  await app.register(depsPlugin, { deps: createDeps({ config, db, clock }) })
  await app.register(errorsPlugin)
  await app.register(publicHostPlugin)
  await app.register(securityPlugin)
  await app.register(formbody)
  await app.register(sessionsPlugin)
  // Counters in the database: shared by every instance on it (http/plugins/rate-limit-store.ts).
  await app.register(rateLimit, { global: false, store: databaseRateLimitStore(db, clock) })
  await app.register(jobsPlugin, { background: options.backgroundJobs ?? true })
  await app.register(healthPlugin, { background: options.backgroundJobs ?? true })
  await app.register(metricsPlugin)
  await app.register(routes)
  return app
}
