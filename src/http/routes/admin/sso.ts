// Operator single sign-on (OpenID Connect): /admin/sso/start sends the browser to the identity
// provider with a fresh state, nonce and PKCE challenge kept in its session; /admin/sso/callback
// takes them out (single use: a replayed callback finds nothing), lets src/admin/sso.ts exchange
// the code and validate the ID token, admits the identity and signs the operator in with a new
// session id. Both are public and rate limited like the password sign-in. Only registered when
// OPERATOR_OIDC_ISSUER is set (README, "Operator single sign-on").
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { signInWithIdentity } from '../../../admin/operators.js'
import { OperatorSso, PENDING_TTL_MS, admitIdentity } from '../../../admin/sso.js'
import { recordAudit } from '../../../audit/events.js'
import { DomainError, isDomainError } from '../../../errors.js'
import { localRedirect } from '../../redirect.js'
import { Text } from '../../schemas.js'

const StartQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) })
// The provider's answer (RFC 6749 §4.1.2, RFC 9207 iss); openid-client reads them from the URL.
const CallbackQuery = Type.Object({
  code: Type.Optional(Text(4096)),
  state: Type.Optional(Text(1024)),
  iss: Type.Optional(Text(1024)),
  error: Type.Optional(Text(200)),
  error_description: Type.Optional(Text(1000)),
})

const sso: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, clock } = app.deps
  const settings = config.operatorSso
  if (!settings) return
  const client = new OperatorSso(settings, config.cartaTimeoutMs)
  const redirectUri = `${config.publicUrl}/admin/sso/callback`
  const routeConfig = {
    access: 'public' as const,
    rateLimit: { max: config.rateLimits.signInPerMinute, timeWindow: '1 minute' },
  }

  const refusal = async (request: FastifyRequest, reason: string, email: string | null) => {
    request.log.warn({ reason }, 'operator single sign-on refused')
    await recordAudit(db, clock.now(), {
      type: 'operator.sign_in_refused',
      actor: 'anonymous',
      details: { via: 'sso', reason, ...(email ? { email } : {}) },
    })
  }

  app.get('/sso/start', { config: routeConfig, schema: { querystring: StartQuery } }, async (request, reply) => {
    const next = localRedirect(request.query.next, { within: '/admin', fallback: '/admin' })
    const { url, pending } = await client.start(redirectUri, next, clock.now())
    // Kept server-side in the session (never a cookie of its own): bound to this browser.
    request.session.operatorSso = pending
    request.log.info('operator single sign-on started')
    return reply.redirect(url, 303)
  })

  app.get('/sso/callback', { config: routeConfig, schema: { querystring: CallbackQuery } }, async (request, reply) => {
    const pending = request.session.operatorSso
    // Single use: taken out before anything else, so a replayed callback finds nothing.
    if (pending) {
      request.session.operatorSso = undefined
      await request.session.save()
    }
    if (!pending || clock.now() - pending.startedAt > PENDING_TTL_MS) {
      request.log.warn({ pending: Boolean(pending) }, 'operator single sign-on callback without a pending sign-in')
      throw new DomainError('sso.no_state', 'No pending single sign-on in this session.', {})
    }
    const callbackUrl = new URL(request.url, config.publicUrl)
    let email: string | null = null
    try {
      const claims = await client.finish(callbackUrl, pending)
      email = typeof claims.email === 'string' ? claims.email.slice(0, 254) : null
      const identity = admitIdentity(settings, claims)
      const operator = await signInWithIdentity(db, identity, clock.now())
      // A new session id at sign-in, so a planted or leaked pre-login id is worthless (session fixation).
      await request.session.regenerate()
      request.session.operatorId = operator.id
      request.session.operatorName = operator.username
      request.log.info({ operator: operator.username, role: operator.role, via: 'sso' }, 'operator signed in')
      return reply.redirect(localRedirect(pending.next, { within: '/admin', fallback: '/admin' }), 303)
    } catch (err) {
      if (isDomainError(err, 'sso.unavailable'))
        request.log.error({ detail: err.details.detail }, 'identity provider unavailable')
      else if (isDomainError(err, 'sso.refused') || isDomainError(err, 'sso.not_allowed'))
        await refusal(request, err.details.reason, email)
      else if (isDomainError(err, 'operator.disabled') || isDomainError(err, 'operator.identity_conflict'))
        await refusal(request, err.code, email)
      throw err
    }
  })
}

export default sso
