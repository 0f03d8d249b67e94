// Background jobs of the token lifecycle: the revocation worker runs on an interval while the
// app is up (only when deps.backgroundJobs; tests drive processDueRevocations by hand).
// Failures are logged, never thrown: a bad run must not take the server down.
import type { FastifyInstance } from 'fastify'
import type { AppDeps } from '../app.js'
import { processDueRevocations } from './revocation.js'

export const REVOCATION_INTERVAL_MS = 15_000

// One runner per app instance; kickRevocations finds it through the app's deps.
const runners = new WeakMap<AppDeps, () => void>()

/** Starts a revocation run now (e.g. right after a grant transaction queued rows). No-op when jobs are off. */
export function kickRevocations(app: FastifyInstance): void {
  runners.get(app.deps)?.()
}

export default async function grantJobs(app: FastifyInstance): Promise<void> {
  if (!app.deps.backgroundJobs) return
  const log = app.log.child({ job: 'revocations' })
  let running = false
  let again = false
  let timer: NodeJS.Timeout | null = null

  const run = (): void => {
    // Never two overlapping runs in one process; a kick during a run schedules one more.
    if (running) {
      again = true
      return
    }
    running = true
    void (async () => {
      do {
        again = false
        try {
          const result = await processDueRevocations({ ...app.deps, log }, { limit: 100 })
          if (result.sent || result.failed) log.info(result, 'revocation run')
        } catch (err) {
          log.error({ err }, 'revocation run failed')
        }
      } while (again)
      running = false
    })()
  }
  runners.set(app.deps, run)

  app.addHook('onReady', async () => {
    timer = setInterval(run, REVOCATION_INTERVAL_MS)
    timer.unref()
    run()
  })
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer)
    timer = null
    runners.delete(app.deps)
  })
}
