// buildApp(deps): the whole web application, without listening. server.ts and the tests use it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import formbody from '@fastify/formbody'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import session from '@fastify/session'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'
import { createDeps } from './deps.js'
import depsPlugin from './http/plugins/deps.js'
import jobsPlugin from './http/plugins/jobs.js'
import { DatabaseSessionStore } from './sessions/store.js'
import { viewsDir } from './web/render.js'
import { DomainError } from './errors.js'
import errorsPlugin from './http/plugins/errors.js'
import adminRoutes from './admin/routes.js'
import lifecycleRoutes from './admin/lifecycle-routes.js'
import auditRoutes from './audit/routes.js'
import cartaRoutes from './carta/routes.js'
import featureRoutes from './features/routes.js'
import reauthLinkRoutes from './rollouts/link-routes.js'
import reportRoutes from './reports/routes.js'
import sandboxRoutes from './sandbox/routes.js'
import homeRoutes from './web/home-routes.js'

export interface BuildOptions {
  config: Config
  db: Db
  clock: Clock
  /** Background jobs (revocations, rollout builds, report schedule). Tests turn them off and drive them by hand. */
  backgroundJobs?: boolean
  /** Pino destination for tests that assert on log lines. */
  logStream?: NodeJS.WritableStream
}

declare module 'fastify' {
  interface Session {
    /** End user connected in this browser. */
    endUserId?: number
    /** Local identity for a user whose Carta identity is unknown (no read_user_info). */
    localKey?: string
    operatorId?: number
    operatorName?: string
  }
}

// Never log tokens, codes, secrets or cookies (DESIGN §5).
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

  await app.register(depsPlugin, { deps: createDeps({ config, db, clock }) })
  await app.register(jobsPlugin, { background: options.backgroundJobs ?? true })

  const cartaOrigins = [...new Set(config.apps.filter((a) => !a.sandbox).map((a) => new URL(a.authBaseUrl).origin))]
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        // Forms post to us and some redirect on to Carta's authorize endpoint.
        formAction: ["'self'", ...cartaOrigins],
        upgradeInsecureRequests: config.cookieSecure ? [] : null,
      },
    },
    // Plain-HTTP local runs must not be pinned to HTTPS.
    strictTransportSecurity: config.cookieSecure,
  })
  await app.register(formbody)
  await app.register(cookie)
  await app.register(session, {
    secret: config.sessionSecret,
    cookieName: 'sl_session',
    store: new DatabaseSessionStore(db, clock),
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure, path: '/', maxAge: 24 * 60 * 60 * 1000 },
  })
  await app.register(csrf, { sessionPlugin: '@fastify/session' })
  await app.register(rateLimit, { global: false })

  await app.register(errorsPlugin)

  // The one stylesheet and the progressive-enhancement script, served by the app itself.
  const assets: Record<string, [string, string]> = {
    'style.css': ['text/css; charset=utf-8', readFileSync(join(viewsDir, 'style.css'), 'utf8')],
    'app.js': ['text/javascript; charset=utf-8', readFileSync(join(viewsDir, 'app.js'), 'utf8')],
  }
  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const asset = assets[request.params.name]
    if (!asset) throw new DomainError('request.not_found', `no asset ${request.params.name}`, {})
    return reply.type(asset[0]).header('cache-control', 'public, max-age=300').send(asset[1])
  })
  app.get('/healthz', async () => ({ ok: true }))

  await app.register(homeRoutes)
  await app.register(cartaRoutes)
  await app.register(featureRoutes)
  await app.register(reauthLinkRoutes)
  await app.register(adminRoutes)
  await app.register(lifecycleRoutes)
  await app.register(auditRoutes)
  await app.register(reportRoutes)
  if (config.sandboxEnabled) await app.register(sandboxRoutes, { prefix: '/sandbox' })

  return app
}
