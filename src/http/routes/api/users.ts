// /api/v1/users: one end user by Carta id or by the integrator's id, their access token, and a
// reauthorization link for one of their rollouts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { keyActor } from '../../../api/keys.js'
import { accessTokenFor } from '../../../api/tokens.js'
import { type ApiUser, findApiUser } from '../../../api/users.js'
import { recordAudit } from '../../../audit/events.js'
import { issueLink, linkContextFrom } from '../../../links/links.js'
import { Id } from '../../schemas.js'
import { API_BODY_LIMIT, type ApiRouteConfig, callerOf } from './auth.js'
import { problems } from './problem.js'
import { AccessTokenSchema, ApiUserSchema, ExternalRef, LinkSchema } from './schemas.js'

const UserParams = Type.Object({ cartaUserId: ExternalRef })

function view(user: ApiUser) {
  const { id: _id, activeGrantId: _g, grantStatus: _s, ...rest } = user
  return rest
}

const users: FastifyPluginAsyncTypebox<{ route: ApiRouteConfig }> = async (app, { route }) => {
  const deps = app.deps
  const context = linkContextFrom(deps.config, deps.clock)

  app.get(
    '/users',
    {
      config: route('read'),
      schema: {
        summary: "An end user by the integrator's own id (set by a connect session)",
        tags: ['users'],
        querystring: Type.Object({ externalUserId: ExternalRef }),
        response: { 200: ApiUserSchema, ...problems(400, 403, 404) },
      },
    },
    async (request) => view(await findApiUser(deps.db, { externalUserId: request.query.externalUserId })),
  )

  app.get(
    '/users/:cartaUserId',
    {
      config: route('read'),
      schema: {
        summary: 'An end user by Carta user id: identity, scopes of the active grant, rollouts',
        tags: ['users'],
        params: UserParams,
        response: { 200: ApiUserSchema, ...problems(403, 404) },
      },
    },
    async (request) => view(await findApiUser(deps.db, { cartaUserId: request.params.cartaUserId })),
  )

  app.get(
    '/users/:cartaUserId/access-token',
    {
      config: route('tokens'),
      schema: {
        summary: "The user's currently valid Carta access token (refreshed first when needed)",
        description:
          'Refreshes through the single-flight refresh when the token expires within a minute. 409 with reconnectUrl when the grant is broken or revoked. Every call is audited.',
        tags: ['users'],
        params: UserParams,
        response: { 200: AccessTokenSchema, ...problems(403, 404, 409, 502, 503) },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request)
      const user = await findApiUser(deps.db, { cartaUserId: request.params.cartaUserId }, { rollouts: false })
      const token = await accessTokenFor({ ...deps, log: request.log }, user, keyActor(caller))
      request.log.info({ userId: user.id, grantId: user.activeGrantId }, 'access token returned to API key')
      // A bearer token in a response: never stored by a cache (RFC 6749 §5.1 asks the same of token responses).
      reply.header('cache-control', 'no-store')
      return token
    },
  )

  app.post(
    '/users/:cartaUserId/reauthorization-links',
    {
      config: route('links'),
      bodyLimit: API_BODY_LIMIT,
      schema: {
        summary: 'A reauthorization link for one rollout (the open one when it exists)',
        tags: ['users'],
        params: UserParams,
        body: Type.Object({ rolloutId: Id }, { additionalProperties: false }),
        response: { 200: LinkSchema, ...problems(400, 403, 404, 409) },
      },
    },
    async (request) => {
      const caller = callerOf(request)
      const user = await findApiUser(deps.db, { cartaUserId: request.params.cartaUserId })
      const { rolloutId } = request.body
      const issued = await issueLink(deps.db, context, { rolloutId, userId: user.id, issuedBy: keyActor(caller) })
      await recordAudit(deps.db, deps.clock.now(), {
        type: 'api.link_issued',
        actor: keyActor(caller),
        userId: user.id,
        rolloutId,
        details: { linkId: issued.link.id, reused: issued.reused },
      })
      request.log.info({ userId: user.id, rolloutId, linkId: issued.link.id, reused: issued.reused }, 'link via API')
      return { url: issued.url, expiresAt: Number(issued.link.expires_at), reused: issued.reused }
    },
  )
}

export default users
