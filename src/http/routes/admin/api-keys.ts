// API keys for the integrator's product (admin only): the list with permissions and last use,
// creating one (the key is shown once, on the answer to the POST) and revoking one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { API_PERMISSIONS, createApiKey, listApiKeys, revokeApiKey } from '../../../api/keys.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { IdParams, Text } from '../../schemas.js'
import { operatorActor } from './access.js'

const CreateBody = Type.Object({
  name: Text(100),
  // A repeated checkbox arrives as an array (coerceTypes 'array'); none ticked: absent.
  permissions: Type.Optional(Type.Array(Type.Enum([...API_PERMISSIONS]), { maxItems: 4 })),
})

const apiKeys: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock } = app.deps
  const admin = { access: 'admin' as const }

  const list = async () =>
    (await listApiKeys(db)).map((k) => ({
      ...k,
      created: formatTime(k.createdAt),
      lastUsed: k.lastUsedAt === null ? 'never' : formatTime(k.lastUsedAt),
      revoked: k.revokedAt === null ? null : formatTime(k.revokedAt),
    }))

  app.get(
    '/api-keys',
    { config: admin, schema: { querystring: Type.Object({ revoked: Type.Optional(Type.Enum(['1'])) }) } },
    async (request, reply) =>
      renderPage(request, reply, 'admin/api-keys', {
        title: 'API keys',
        csrf: true,
        keys: await list(),
        permissions: API_PERMISSIONS,
        created: null,
        notice: request.query.revoked ? 'The key was revoked: requests with it are refused from now on.' : null,
      }),
  )

  app.post(
    '/api-keys',
    { config: admin, preHandler: app.csrfProtection, schema: { body: CreateBody } },
    async (request, reply) => {
      const { key, info } = await createApiKey(
        db,
        { name: request.body.name, permissions: request.body.permissions ?? [], actor: operatorActor(request) },
        clock.now(),
      )
      request.log.info({ keyId: info.id, permissions: info.permissions }, 'API key created')
      // The key is on this one answer only; nothing caches it.
      reply.header('cache-control', 'no-store')
      return renderPage(request, reply, 'admin/api-keys', {
        title: 'API keys',
        csrf: true,
        keys: await list(),
        permissions: API_PERMISSIONS,
        created: { key, name: info.name, permissions: info.permissions },
        notice: null,
      })
    },
  )

  app.post(
    '/api-keys/:id/revoke',
    { config: admin, preHandler: app.csrfProtection, schema: { params: IdParams } },
    async (request, reply) => {
      const revoked = await revokeApiKey(db, request.params.id, operatorActor(request), clock.now())
      request.log.info({ keyId: request.params.id, revoked }, 'API key revoked')
      return reply.redirect('/admin/api-keys?revoked=1', 303)
    },
  )
}

export default apiKeys
