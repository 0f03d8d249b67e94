// Probes for load balancers and the metrics endpoint (README, "Monitoring"):
// - /healthz: the process answers (liveness); nothing else is checked, so a database outage does
//   not get every instance restarted.
// - /readyz: 200 when the database answers and is migrated and the background jobs run, else 503
//   (take the instance out of rotation); plugins/health.ts decides.
// - /metrics: Prometheus text format, only when METRICS_TOKEN is set (404 otherwise) and only with
//   `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise, RFC 6750 §3).
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'

const digest = (value: string) => createHash('sha256').update(value).digest()

const health: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app.deps
  const noStore = { 'cache-control': 'no-store' }

  app.get('/healthz', async (_request, reply) => reply.headers(noStore).send({ ok: true }))

  app.get('/readyz', async (request, reply) => {
    const result = await app.readiness()
    if (!result.ready) request.log.warn({ checks: result.checks }, 'not ready')
    return reply
      .code(result.ready ? 200 : 503)
      .headers(noStore)
      .send(result)
  })

  app.get('/metrics', async (request, reply) => {
    const token = config.metricsToken
    if (token === null) return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n')
    const presented = /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '')?.[1]
    // Compared as digests: constant time whatever the lengths.
    if (!presented || !timingSafeEqual(digest(presented), digest(token))) {
      request.log.warn({ bearer: Boolean(presented) }, 'metrics request without the right token')
      return reply
        .code(401)
        .header('www-authenticate', `Bearer realm="metrics"${presented ? ', error="invalid_token"' : ''}`)
        .type('text/plain; charset=utf-8')
        .send('Unauthorized\n')
    }
    const body = await app.metrics.registry.metrics()
    return reply.headers(noStore).type(app.metrics.registry.contentType).send(body)
  })
}

export default health
