// /carta/connect starts the Carta authorization-code flow; /carta/callback completes it.
// Both are rate limited per client IP; the flow itself lives in src/carta/flow.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { DomainError } from '../../errors.js'
import { appScopes, currentApp, findAppByKey } from '../../apps/apps.js'
import { CALLBACK_PATH, beginAuthorization, completeAuthorization } from '../../carta/flow.js'
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
    const target = key ? await findAppByKey(db, key) : await currentApp(db, config.defaultEnvironment)
    if (!target) {
      throw key
        ? new DomainError('app.unknown_key', `There is no Carta app called "${key.slice(0, 64)}".`, { key })
        : new DomainError('app.no_current', 'No current Carta app.', { environment: config.defaultEnvironment })
    }
    return beginAuthorization(request, reply, { app: target, scopes: appScopes(target) })
  })

  app.get(CALLBACK_PATH, { config: { rateLimit }, schema: { querystring: CallbackQuery } }, async (request, reply) =>
    completeAuthorization(request, reply, request.query),
  )
}

export default connect
