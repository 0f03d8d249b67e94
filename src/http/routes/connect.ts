// /carta/connect starts the Carta authorization-code flow; /carta/callback completes it. Both are
// rate limited per client IP; the flow itself is src/flows/connect.ts. Here: the browser session
// (the state is bound to it; a new session id once a user is connected) and the redirects.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { CONNECT_SESSION_PATH, allowedReturn, openConnectSession } from '../../api/connect-sessions.js'
import { appScopes, currentApp, findAppById, findAppByKey } from '../../apps/apps.js'
import { DomainError } from '../../errors.js'
import { CALLBACK_PATH, completeConnect } from '../../flows/connect.js'
import { sendToCarta } from '../authorize.js'
import { localRedirect } from '../redirect.js'
import { Text } from '../schemas.js'

// Carta's answer (RFC 6749 §4.1.2): state and code, or error (with optional description and
// RFC 9207 `iss`). Other parameters are ignored (be liberal in what you accept).
const CallbackQuery = Type.Object({
  state: Type.Optional(Text(512)),
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  error: Type.Optional(Type.String({ maxLength: 512 })),
})

const connect: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps
  const rateLimit = { max: config.rateLimits.oauthPerMinute, timeWindow: '1 minute' }

  const schema = { querystring: Type.Object({ app: Type.Optional(Text(200)) }) }
  app.get('/carta/connect', { config: { rateLimit }, schema }, async (request, reply) => {
    const key = request.query.app ?? ''
    let target = key ? await findAppByKey(db, key) : await currentApp(db, config.defaultEnvironment)
    // A retired app's users reconnect with its successor (the operator's choice, apps/retire.ts).
    if (target?.status === 'retired' && target.successor_app_id !== null) {
      const successor = await findAppById(db, target.successor_app_id)
      if (successor?.status === 'active') {
        request.log.info({ retired: target.key, successor: successor.key }, 'connect: retired app, using its successor')
        target = successor
      }
    }
    if (!target) {
      throw key
        ? new DomainError('app.unknown_key', `There is no Carta app called "${key.slice(0, 64)}".`, { key })
        : new DomainError('app.no_current', 'No current Carta app.', { environment: config.defaultEnvironment })
    }
    return sendToCarta(request, reply, { app: target, scopes: appScopes(target) })
  })

  app.get(CALLBACK_PATH, { config: { rateLimit }, schema: { querystring: CallbackQuery } }, async (request, reply) => {
    const connected = await completeConnect(
      app.deps,
      {
        query: request.query,
        currentUrl: new URL(request.url, config.publicUrl),
        sessionId: request.session.sessionId,
        localKey: request.session.localKey ?? null,
        onTokensQueued: () => app.jobs.kick('revocations'),
      },
      request.log,
    )
    // A new session id now that this browser is bound to a user (session fixation, RFC 9700 §4.1 spirit).
    await request.session.regenerate(['localKey', 'operatorId', 'operatorName'])
    if (connected.createdLocalKey) request.session.localKey = connected.createdLocalKey
    request.session.endUserId = connected.userId
    // The superseded grant's tokens were queued for revocation: send them now, not at the next tick.
    if (connected.supersededGrantId) app.jobs.kick('revocations')
    app.jobs.kick('webhooks')
    // A connect session lands back in the integrator's product, only under an allowed origin.
    const external = connected.externalReturnTo ? allowedReturn(config, connected.externalReturnTo) : null
    if (external) return reply.redirect(external, 303)
    return reply.redirect(localRedirect(connected.returnTo ?? '/', { fallback: '/' }), 303)
  })

  // An API connect session's one-time URL: opened once, it starts the connect flow with the
  // current app, the state carrying the session (src/api/connect-sessions.ts).
  app.get(
    `${CONNECT_SESSION_PATH}/:token`,
    { config: { rateLimit }, schema: { params: Type.Object({ token: Text(100) }) } },
    async (request, reply) => {
      const session = await openConnectSession(db, request.params.token, app.deps.clock.now())
      const target = await currentApp(db, config.defaultEnvironment)
      if (!target)
        throw new DomainError('app.no_current', 'No current Carta app.', { environment: config.defaultEnvironment })
      request.log.info({ connectSessionId: session.id }, 'connect session opened')
      return sendToCarta(request, reply, { app: target, scopes: appScopes(target), connectSessionId: session.id })
    },
  )
}

export default connect
