// Makes the application's dependencies (src/deps.ts) reachable from every route as `app.deps`.
import fp from 'fastify-plugin'
import type { AppDeps } from '../../deps.js'

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps
  }
}

export default fp<{ deps: AppDeps }>(
  async (app, options) => {
    app.decorate('deps', options.deps)
  },
  { name: 'deps' },
)
