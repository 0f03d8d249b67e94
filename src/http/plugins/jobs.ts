// The background jobs (src/jobs/index.ts) as `app.jobs`: started when the app is ready if
// background work is on, stopped (and awaited) when it closes. Tests leave it stopped and drive
// passes by hand with app.jobs.run(name).
import fp from 'fastify-plugin'
import { type AppJobs, createJobs } from '../../jobs/index.js'
import { JobRunner } from '../../jobs/runner.js'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobRunner<AppJobs>
  }
}

export default fp<{ background: boolean }>(
  async (app, options) => {
    const logFor = (name: string) => app.log.child({ job: name })
    const runner = new JobRunner(createJobs(app.deps, logFor), logFor)
    app.decorate('jobs', runner)
    if (options.background) app.addHook('onReady', () => runner.start())
    app.addHook('onClose', () => runner.stop())
  },
  { name: 'jobs', dependencies: ['deps'] },
)
