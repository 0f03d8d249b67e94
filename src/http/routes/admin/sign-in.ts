// Operator sign-in and sign-out: the only /admin routes open to visitors (access 'public'), rate
// limited per client IP.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkOperatorCredentials } from '../../../admin/operators.js'
import { renderPage } from '../../render.js'

type Body = Record<string, string | string[] | undefined>

/** Only local dashboard paths: never an absolute URL, `//host` or a backslash trick (open redirect). */
export function safeNext(value: unknown): string {
  if (typeof value !== 'string') return '/admin'
  if (!/^\/admin(?:[/?#]|$)/.test(value) || value.startsWith('//') || /[\\\r\n\t]/.test(value)) return '/admin'
  return value
}

function field(body: Body | undefined, name: string): string {
  const v = body?.[name]
  return (Array.isArray(v) ? v[0] : v) ?? ''
}

export default async function signIn(app: FastifyInstance): Promise<void> {
  const { db, clock, config } = app.deps
  const signInConfig = {
    access: 'public' as const,
    rateLimit: { max: config.rateLimits.signInPerMinute, timeWindow: '1 minute' },
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
      { title: 'Operator sign-in', csrf: true, username: '', error: null, ...data },
      status,
    )

  app.get<{ Querystring: { next?: string } }>('/sign-in', { config: signInConfig }, async (request, reply) => {
    const next = safeNext(request.query.next)
    if (request.session.operatorId) return reply.redirect(next, 303)
    return signInPage(request, reply, { next })
  })

  app.post<{ Body: Body }>(
    '/sign-in',
    { config: signInConfig, preHandler: app.csrfProtection },
    async (request, reply) => {
      const username = field(request.body, 'username').slice(0, 200)
      const password = field(request.body, 'password')
      const next = safeNext(field(request.body, 'next'))
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
