// Metrics for the app's own registry (src/metrics.ts, in app.deps): HTTP request durations by
// route pattern (never the URL: ids and tokens stay out of labels) and the database gauges of
// metric-gauges.ts, read at scrape time. /metrics itself is in routes/health.ts.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { DATABASE_GAUGES } from './metric-gauges.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's registry and counters (the same object as app.deps.metrics). */
    metrics: import('../../metrics.js').AppMetrics
  }
}

export default fp(
  async (app: FastifyInstance) => {
    const { deps } = app
    const metrics = deps.metrics
    app.decorate('metrics', metrics)
    for (const gauge of DATABASE_GAUGES) {
      new Gauge({
        name: gauge.name,
        help: gauge.help,
        labelNames: gauge.labelNames,
        registers: [metrics.registry],
        async collect() {
          const samples = await gauge.read(deps)
          this.reset()
          for (const s of samples) this.set(s.labels, s.value)
        },
      })
    }
    app.addHook('onResponse', async (request, reply) => {
      metrics.httpDuration.observe(
        {
          method: request.method,
          // The pattern of the matched route; every unmatched URL shares one label.
          route: request.is404 ? 'not_found' : (request.routeOptions.url ?? 'not_found'),
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      )
    })
  },
  { name: 'metrics', dependencies: ['deps'] },
)
