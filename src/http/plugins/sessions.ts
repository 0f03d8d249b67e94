// Cookies, sessions in the database (session-store.ts: they survive restarts and every instance
// sees them) and CSRF protection for every form. The session's fields are declared here, once.
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import session from '@fastify/session'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DAY_MS } from '../../time.js'
import { DatabaseSessionStore } from './session-store.js'

declare module 'fastify' {
  interface Session {
    /** End user connected in this browser. */
    endUserId?: number
    /** Local identity for a user whose Carta identity is unknown (no read_user_info). */
    localKey?: string
    operatorId?: number
    operatorName?: string
    /** A single sign-on in progress (src/admin/sso.ts PendingSignIn): used once by the callback. */
    operatorSso?: { state: string; nonce: string; verifier: string; next: string; startedAt: number }
    /** Set when a connect flow starts so the session is saved and its id can bind the state. */
    connectStartedAt?: number
    /** Rollouts whose prompt this person hid with "Not now" (routes/prompt.ts). */
    dismissedPrompts?: number[]
    /** When the stored expiry last slid forward (see SESSION_REFRESH_MS). */
    refreshedAt?: number
  }
}

export const SESSION_COOKIE = 'sl_session'

/**
 * A session expires a day after its last use, but its stored expiry (and cookie) slides forward at
 * most this often, not on every page: a write per page view is a write the page must wait for
 * while another process holds SQLite's write lock (an import: page loads of 100 ms–3 s). An
 * active session thus lives between 23 h 55 min and 24 h after its last use.
 */
export const SESSION_REFRESH_MS = 5 * 60_000

/** Requests under /api/v1 (routes/api/v1.ts), as the raw URL names them. */
export function isApiV1Url(url: string): boolean {
  return url.startsWith('/api/v1') && (url.length === 7 || url[7] === '/' || url[7] === '?')
}

// Callback-style hooks (@fastify/session's): request, reply, [payload,] done.
type SessionHook = (this: unknown, request: FastifyRequest, ...rest: unknown[]) => unknown

function skipOnApi(hook: SessionHook): SessionHook {
  return function (this: unknown, request, ...rest) {
    if (isApiV1Url(request.url)) return (rest[rest.length - 1] as () => void)()
    return hook.call(this, request, ...rest)
  }
}

export default fp(
  async (app) => {
    const { config, db, clock } = app.deps
    await app.register(cookie)
    // The API authenticates with keys only (routes/api/auth.ts): on /api/v1 the session hooks do
    // nothing at all (no cookie read, no session id made and signed, no store call), so a request
    // there costs no session work. @fastify/session has no per-route switch; its two hooks
    // (onRequest, onSend) are wrapped as it adds them.
    const addHook = app.addHook
    app.addHook = ((name: string, hook: SessionHook) =>
      (addHook as (name: string, hook: SessionHook) => FastifyInstance).call(app, name, skipOnApi(hook))) as never
    try {
      await app.register(session, {
        secret: config.sessionSecret,
        cookieName: SESSION_COOKIE,
        store: new DatabaseSessionStore(db, clock, app.log),
        saveUninitialized: false,
        rolling: false,
        cookie: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure, path: '/', maxAge: DAY_MS },
      })
    } finally {
      app.addHook = addHook
    }
    app.addHook('preHandler', async (request) => slideExpiry(request))
    await app.register(csrf, { sessionPlugin: '@fastify/session' })
  },
  { name: 'sessions', dependencies: ['deps'] },
)

/**
 * Marks a stored session whose expiry is more than SESSION_REFRESH_MS behind a fresh one as
 * changed, so @fastify/session saves it (and re-sends the cookie) with the new expiry.
 */
function slideExpiry(request: FastifyRequest): void {
  const session = request.session
  if (!session) return // /api/v1: no session at all
  // The expiry the store holds (@fastify/session restores it as originalExpires), and the one a
  // save now would give it (the cookie's maxAge from now).
  const stored = (session.cookie as { originalExpires?: Date }).originalExpires
  const fresh = session.cookie.expires
  if (stored && fresh && fresh.getTime() - stored.getTime() >= SESSION_REFRESH_MS) session.refreshedAt = Date.now()
}
