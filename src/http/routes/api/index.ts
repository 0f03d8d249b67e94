// /api: the integrator's HTTP API. /api/v1 (v1.ts) holds the routes behind API keys; beside it the
// OpenAPI 3 document generated from those routes' schemas (@fastify/swagger) and a readable
// reference page rendered from the same document (no script, no CDN). See src/README.md, "API".
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { API_PERMISSIONS } from '../../../api/keys.js'
import { renderPage } from '../../render.js'
import { docsPageData } from './docs.js'
import v1 from './v1.js'

export default async function api(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Scope Ledger API',
        version: '1',
        description:
          'Scopes, tokens and links of Carta grants for the integrator’s product. Send an API key as `Authorization: Bearer <key>`. Errors are RFC 9457 problem details (`application/problem+json`).',
      },
      servers: [{ url: app.deps.config.publicUrl }],
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (slk_…)' } },
      },
      security: [{ apiKey: [] }],
      tags: [
        { name: 'users', description: 'End users, their tokens and links' },
        { name: 'connect', description: 'Connecting a user of the integrator’s product' },
        { name: 'rollouts', description: 'Scope rollouts and who still lacks scopes' },
      ],
    },
    hideUntagged: true,
    // Each operation says which key permission it needs (x-permission, and in words).
    transform: ({ schema, url, route }) => {
      const permission = route.config?.apiPermission
      if (!permission || !schema) return { schema, url }
      const note = `Needs the \`${permission}\` permission (one of ${API_PERMISSIONS.join(', ')}).`
      const description = schema.description ? `${schema.description}\n\n${note}` : note
      return { schema: { ...schema, description, 'x-permission': permission } as typeof schema, url }
    },
  })
  await app.register(v1, { prefix: '/v1' })

  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return app.swagger()
  })
  app.get('/docs', { schema: { hide: true } }, async (request, reply) =>
    renderPage(request, reply, 'api/docs', { title: 'API reference', ...docsPageData(app.swagger()) }),
  )
}
