// Readiness for load balancers (routes/health.ts /readyz): the database answers and holds every
// migration, and the background jobs run when this instance is meant to run them. Each check has
// a deadline, so a hung database makes the probe fail rather than hang.
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { pendingMigrations } from '../../db/migrate.js'

export interface Readiness {
  ready: boolean
  checks: { database: string; migrations: string; jobs: string }
}

declare module 'fastify' {
  interface FastifyInstance {
    readiness(): Promise<Readiness>
  }
}

const CHECK_TIMEOUT_MS = 2_000

function withDeadline<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

export default fp<{ background: boolean }>(
  async (app, options) => {
    const { db } = app.deps
    app.decorate('readiness', async (): Promise<Readiness> => {
      let database = 'ok'
      let migrations = 'ok'
      try {
        await withDeadline(sql`select 1`.execute(db))
        const pending = await withDeadline(pendingMigrations(db))
        if (pending.length > 0) migrations = `${pending.length} pending (${pending[0]})`
      } catch (err) {
        database = `unreachable: ${(err as Error).message}`.slice(0, 200)
        migrations = 'unknown'
      }
      // A web instance built without background jobs is ready without them; one built with them
      // is not ready until they run (and stops being ready once they stop, at shutdown).
      const jobs = app.jobs.started ? 'running' : options.background ? 'stopped' : 'off'
      return {
        ready: database === 'ok' && migrations === 'ok' && jobs !== 'stopped',
        checks: { database, migrations, jobs },
      }
    })
  },
  { name: 'health', dependencies: ['deps', 'jobs'] },
)
