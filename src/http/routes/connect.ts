// /carta/connect starts the Carta authorization-code flow; /carta/callback completes it.
// Both are rate limited per client IP; the flow itself lives in src/carta/flow.ts.
import type { FastifyInstance } from 'fastify'
import { DomainError } from '../../errors.js'
import { appScopes, currentApp, findAppByKey } from '../../apps/apps.js'
import { type CallbackQuery, CALLBACK_PATH, beginAuthorization, completeAuthorization } from '../../carta/flow.js'

export default async function connect(app: FastifyInstance): Promise<void> {
  const { config, db } = app.deps
  const rateLimit = { max: config.rateLimits.oauthPerMinute, timeWindow: '1 minute' }

  app.get<{ Querystring: { app?: string } }>('/carta/connect', { config: { rateLimit } }, async (request, reply) => {
    const key = typeof request.query.app === 'string' ? request.query.app.trim() : ''
    const target = key ? await findAppByKey(db, key) : await currentApp(db, config.defaultEnvironment)
    if (!target) {
      throw key
        ? new DomainError('app.unknown_key', `There is no Carta app called "${key.slice(0, 64)}".`, { key })
        : new DomainError('app.no_current', 'No current Carta app.', { environment: config.defaultEnvironment })
    }
    return beginAuthorization(request, reply, { app: target, scopes: appScopes(target) })
  })

  app.get<{ Querystring: CallbackQuery }>(CALLBACK_PATH, { config: { rateLimit } }, async (request, reply) =>
    completeAuthorization(request, reply),
  )
}
