// The one stylesheet and the progressive-enhancement script, served by the app itself (no CDN).
// The load balancer's probes are in health.ts.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { viewsDir } from '../../views.js'

const assets: FastifyPluginAsyncTypebox = async (app) => {
  const files: Record<string, [string, string]> = {
    'style.css': ['text/css; charset=utf-8', readFileSync(join(viewsDir, 'style.css'), 'utf8')],
    'app.js': ['text/javascript; charset=utf-8', readFileSync(join(viewsDir, 'app.js'), 'utf8')],
  }
  const schema = { params: Type.Object({ name: Type.Enum(Object.keys(files)) }) }
  app.get('/assets/:name', { schema }, async (request, reply) => {
    const [type, body] = files[request.params.name]!
    return reply.type(type).header('cache-control', 'public, max-age=300').send(body)
  })
}

export default assets
