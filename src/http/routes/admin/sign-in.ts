// Operator sign-in and sign-out: the only /admin routes open to visitors (access 'public') with the
// single sign-on routes (sso.ts), rate limited per client IP. Password sign-in can be switched off
// (OPERATOR_PASSWORD_SIGN_IN=false) once single sign-on is set up.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { checkOperatorCredentials } from '../../../admin/operators.js'
import { DomainError } from '../../../errors.js'
import { localRedirect } from '../../redirect.js'
import { renderPage } from '../../render.js'

// `next` is any text: safeNext keeps only dashboard paths a Location header carries safely. Names and passwords are checked
// by checkOperatorCredentials; a wrong one is a 401 page, never a schema error.
const NextQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) })
const SignInBody = Type.Object({
  username: Type.Optional(Type.String({ maxLength: 1000 })),
  password: Type.Optional(Type.String({ maxLength: 4096 })),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
})

/** Where to go after signing in: a dashboard page (../../redirect.ts), else the dashboard. */
const safeNext = (value: unknown) => localRedirect(value, { within: '/admin', fallback: '/admin' })

const signIn: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  const signInConfig = {
    access: 'public' as const,
    rateLimit: { max: config.rateLimits.signInPerMinute, timeWindow: '1 minute' },
  }

  const passwordsOff = async (request: FastifyRequest) => {
    request.log.warn('password sign-in attempted while it is switched off')
    throw new DomainError('operator.password_sign_in_off', 'Password sign-in is switched off.', {})
  }

  const signInPage = (
    request: FastifyRequest,
    reply: FastifyReply,
    data: { next: string; username?: string; error?: string },
    status = 200,
  ) =>
    renderPage(
      request,
      reply,
      'admin/sign-in',
      {
        title: 'Operator sign-in',
        csrf: true,
        username: '',
        error: null,
        passwords: config.passwordSignIn,
        ssoHref: config.operatorSso ? `/admin/sso/start?next=${encodeURIComponent(data.next)}` : null,
        ...data,
      },
      status,
    )

  app.get('/sign-in', { config: signInConfig, schema: { querystring: NextQuery } }, async (request, reply) => {
    const next = safeNext(request.query.next)
    if (request.session.operatorId) return reply.redirect(next, 303)
    return signInPage(request, reply, { next })
  })

  app.post(
    '/sign-in',
    {
      config: signInConfig,
      // Switched off, the form is gone (so is its CSRF token): say so before the CSRF check.
      preHandler: config.passwordSignIn ? app.csrfProtection : passwordsOff,
      schema: { body: SignInBody },
    },
    async (request, reply) => {
      const username = (request.body.username ?? '').slice(0, 200)
      const password = request.body.password ?? ''
      const next = safeNext(request.body.next)
      const operator = username && password ? await checkOperatorCredentials(db, username, password, clock.now()) : null
      if (!operator) {
        // Never the password; the username helps spot guessing.
        request.log.warn({ username }, 'operator sign-in failed')
        return signInPage(request, reply, { next, username, error: 'Wrong username or password.' }, 401)
      }
      // A new session id at sign-in, so a planted or leaked pre-login id is worthless (session fixation).
      await request.session.regenerate()
      request.session.operatorId = operator.id
      request.session.operatorName = operator.username
      request.log.info({ operator: operator.username }, 'operator signed in')
      return reply.redirect(next, 303)
    },
  )

  app.post('/sign-out', { config: { access: 'public' }, preHandler: app.csrfProtection }, async (request, reply) => {
    const name = request.session.operatorName
    await request.session.destroy()
    if (name) request.log.info({ operator: name }, 'operator signed out')
    return reply.redirect('/admin/sign-in', 303)
  })
}

export default signIn
