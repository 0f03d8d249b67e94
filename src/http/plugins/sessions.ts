// Cookies, sessions in the database (session-store.ts: they survive restarts and every instance
// sees them) and CSRF protection for every form. The session's fields are declared here, once.
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import session from '@fastify/session'
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
  }
}

export const SESSION_COOKIE = 'sl_session'

export default fp(
  async (app) => {
    const { config, db, clock } = app.deps
    await app.register(cookie)
    await app.register(session, {
      secret: config.sessionSecret,
      cookieName: SESSION_COOKIE,
      store: new DatabaseSessionStore(db, clock, app.log),
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: config.cookieSecure, path: '/', maxAge: DAY_MS },
    })
    await app.register(csrf, { sessionPlugin: '@fastify/session' })
  },
  { name: 'sessions', dependencies: ['deps'] },
)
