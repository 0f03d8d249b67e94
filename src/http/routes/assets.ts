// The one stylesheet and the progressive-enhancement script, served by the app itself (no CDN),
// and the load balancer's health check.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { DomainError } from '../../errors.js'
import { viewsDir } from '../../views.js'

export default async function assets(app: FastifyInstance): Promise<void> {
  const files: Record<string, [string, string]> = {
    'style.css': ['text/css; charset=utf-8', readFileSync(join(viewsDir, 'style.css'), 'utf8')],
    'app.js': ['text/javascript; charset=utf-8', readFileSync(join(viewsDir, 'app.js'), 'utf8')],
  }
  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const asset = files[request.params.name]
    if (!asset) throw new DomainError('request.not_found', `no asset ${request.params.name}`, {})
    return reply.type(asset[0]).header('cache-control', 'public, max-age=300').send(asset[1])
  })
  app.get('/healthz', async () => ({ ok: true }))
}
