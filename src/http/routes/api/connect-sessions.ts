// POST /api/v1/connect-sessions: a one-time URL that connects one of the integrator's users to
// Carta and ties the Carta identity to their externalUserId (src/api/connect-sessions.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { createConnectSession } from '../../../api/connect-sessions.js'
import { keyActor } from '../../../api/keys.js'
import { Text } from '../../schemas.js'
import { API_BODY_LIMIT, type ApiRouteConfig, callerOf } from './auth.js'
import { problems } from './problem.js'
import { ConnectSessionSchema } from './schemas.js'

const connectSessions: FastifyPluginAsyncTypebox<{ route: ApiRouteConfig }> = async (app, { route }) => {
  const { db, config, clock } = app.deps
  app.post(
    '/connect-sessions',
    {
      config: route('connect'),
      bodyLimit: API_BODY_LIMIT,
      schema: {
        summary: 'A one-time URL that connects one of your users to Carta',
        description:
          'Send the user to `url` (once, within 30 minutes). After the Carta connection their Carta identity is tied to `externalUserId` (then `GET /api/v1/users?externalUserId=` finds them) and the browser lands on `returnTo`, which must be under an origin listed in API_ALLOWED_RETURN_ORIGINS.',
        tags: ['connect'],
        body: Type.Object(
          { externalUserId: Type.Intersect([Text(200), Type.String({ minLength: 1 })]), returnTo: Text(2000) },
          { additionalProperties: false },
        ),
        response: { 200: ConnectSessionSchema, ...problems(400, 403) },
      },
    },
    async (request) => {
      const caller = callerOf(request)
      const session = await createConnectSession(
        db,
        config,
        { ...request.body, apiKeyId: caller.keyId, actor: keyActor(caller) },
        clock.now(),
      )
      request.log.info({ externalUserId: request.body.externalUserId }, 'connect session created')
      return session
    },
  )
}

export default connectSessions
