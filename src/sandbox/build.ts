// buildSandbox(options): the sandbox Carta as its own Fastify server (not listening yet), for
// running it on a separate port — e.g. several app instances sharing one "Carta" (src/README.md, "Several instances").
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import helmet from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Clock, systemClock } from '../clock.js'
import { viewsDir } from '../views.js'
import { sandboxPlugin } from './plugin.js'
import type { RateLimitSettings } from './rate-limit.js'
import { type SandboxClient, SandboxStore } from './store.js'

export interface SandboxOptions {
  clients: SandboxClient[]
  /** Base time (plus the sandbox's own offset); the system clock by default. */
  clock?: Clock
  /** Path prefixes to serve under ('' = the root). Several share one store. */
  prefixes?: string[]
  /** Signs the sign-in cookie; random per process by default (state is in memory anyway). */
  cookieSecret?: string
  cookieSecure?: boolean
  /** The API's rate limit per client id; Carta's documented numbers (10/s, 300/min) by default. */
  rateLimit?: RateLimitSettings
  logLevel?: string
  logStream?: NodeJS.WritableStream
}

export type SandboxServer = FastifyInstance & { sandboxStore: SandboxStore }

/** OAuth codes, states and tokens in URLs never reach the log. */
function redactUrl(url: string): string {
  return url.replace(/([?&](?:code|state|token|access_token)=)[^&]*/g, '$1[redacted]')
}

export async function buildSandbox(options: SandboxOptions): Promise<SandboxServer> {
  const app = Fastify({
    logger: {
      level: options.logLevel ?? 'info',
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
        censor: '[redacted]',
      },
      serializers: { req: (req) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }) },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    bodyLimit: 64 * 1024,
  }) as unknown as FastifyInstance
  const store = new SandboxStore(options.clients, options.clock ?? systemClock, {
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
  })
  app.decorate('sandboxStore', store)

  const redirectOrigins = [...new Set(options.clients.flatMap((c) => c.redirectUris.map((u) => new URL(u).origin)))]
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        // The consent form's answer is a redirect to the client (another origin here).
        formAction: ["'self'", ...redirectOrigins],
        upgradeInsecureRequests: null,
      },
    },
    strictTransportSecurity: false,
  })
  await app.register(formbody)
  await app.register(cookie)

  // The pages share the app's stylesheet (same layout classes, same CSP-safe rules).
  const css = readFileSync(join(viewsDir, 'style.css'), 'utf8')
  app.get('/assets/style.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(css),
  )
  app.get('/healthz', async () => ({ ok: true }))
  app.setNotFoundHandler(async (request, reply) => {
    request.log.info('not found')
    return reply.code(404).send({ error: 'not_found', error_description: 'There is nothing at this address.' })
  })
  app.setErrorHandler(async (error: { statusCode?: number; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    if (status === 500) request.log.error({ err: error }, 'unhandled error')
    else request.log.warn({ status, reason: error.message }, 'bad request')
    return reply.code(status).send({
      error: status === 500 ? 'server_error' : 'invalid_request',
      error_description: status === 500 ? 'Internal error.' : error.message,
    })
  })

  const cookieSecret = options.cookieSecret ?? randomBytes(32).toString('base64url')
  for (const prefix of new Set(options.prefixes ?? [''])) {
    await app.register(sandboxPlugin, {
      prefix: prefix.replace(/\/+$/, ''),
      store,
      cookieSecret,
      cookieSecure: options.cookieSecure ?? false,
    })
  }
  return app as SandboxServer
}
