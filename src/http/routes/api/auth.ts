// The API's one access decision (src/README.md, "Where each kind of change goes → A new API route"):
// an onRequest hook that accepts only `Authorization: Bearer <API key>` (RFC 6750 §2.1). Session
// cookies count for nothing here, and API keys count for nothing under /admin (that guard reads
// only the operator session). Each route names the permission it needs in `config.apiPermission`.
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { type ApiCaller, type ApiPermission, authenticateKey } from '../../../api/keys.js'
import { DomainError } from '../../../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** /api/v1 routes: the permission the key must hold. */
    apiPermission?: ApiPermission
  }
  interface FastifyRequest {
    /** The API key this request authenticated with (/api/v1 only). */
    apiCaller?: ApiCaller
  }
}

export async function apiGuard(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const header = request.headers.authorization
  const match = typeof header === 'string' ? /^Bearer +([^\s]+) *$/i.exec(header) : null
  if (!match) {
    // RFC 6750 §3: a request without credentials gets the challenge and no error code.
    reply.header('www-authenticate', 'Bearer realm="scope-ledger"')
    throw new DomainError('api.unauthorized', 'No bearer API key.', { reason: header ? 'malformed' : 'missing' })
  }
  const caller = await authenticateKey(request.server.deps.db, match[1]!, request.server.deps.clock.now())
  if (!caller) {
    reply.header('www-authenticate', 'Bearer realm="scope-ledger", error="invalid_token"')
    throw new DomainError('api.unauthorized', 'Unknown or revoked API key.', { reason: 'invalid' })
  }
  request.apiCaller = caller
  // Fastify already made this request its own (pino) child logger: add the key to its bindings
  // rather than make a child of the child on every request.
  ;(request.log as FastifyBaseLogger & { setBindings(bindings: object): void }).setBindings({ apiKeyId: caller.keyId })
  const needed = request.routeOptions.config.apiPermission
  if (needed && !caller.permissions.includes(needed)) {
    reply.header('www-authenticate', `Bearer realm="scope-ledger", error="insufficient_scope", scope="${needed}"`)
    throw new DomainError('api.forbidden', `API key ${caller.keyId} lacks "${needed}".`, { permission: needed })
  }
}

/** The authenticated caller of an /api/v1 route (the guard ran). */
export function callerOf(request: FastifyRequest): ApiCaller {
  if (!request.apiCaller) throw new Error('apiGuard did not run')
  return request.apiCaller
}

/** The route config every /api/v1 route spreads: its permission and the per-key rate limit. */
export type ApiRouteConfig = (permission: ApiPermission) => {
  apiPermission: ApiPermission
  /** @fastify/helmet's per-route switch: v1.ts sets the API's own headers. */
  helmet: { skipRoute: true }
  rateLimit: { max: number; timeWindow: number; keyGenerator: (request: FastifyRequest) => string }
}

/** JSON bodies of the API are small; anything bigger is refused with 413 before it is parsed. */
export const API_BODY_LIMIT = 16 * 1024
