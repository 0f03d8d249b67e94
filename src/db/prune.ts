// Deleting old rows in bounded batches (src/README.md, "Background jobs"): each batch is one short
// statement, so pruning a backlog of a million expired sessions never holds a long lock or one huge
// transaction; a pass stops after `maxBatches` and the next pass continues. Portable: a DELETE
// whose keys come from a LIMITed subquery works on SQLite and PostgreSQL alike.
import { type Kysely, sql } from 'kysely'
import type { Clock } from '../clock.js'
import type { Job } from '../jobs/runner.js'
import type { Database } from './schema.js'

export const PRUNE_BATCH = 1_000
export const PRUNE_MAX_BATCHES = 20

/** The tables pruned by time, their key, and the time column compared with the cut-off. */
const PRUNABLE = {
  sessions: { key: 'sid', column: 'expires_at' },
  oauth_states: { key: 'state', column: 'expires_at' },
  rate_limit_hits: { key: 'key', column: 'reset_at' },
} as const

export type PrunableTable = keyof typeof PRUNABLE

/** Deletes rows of `table` whose time column is below `before`, at most batch × maxBatches per call. */
export async function pruneInBatches(
  db: Kysely<Database>,
  table: PrunableTable,
  before: number,
  options: { batch?: number; maxBatches?: number } = {},
): Promise<number> {
  const { key, column } = PRUNABLE[table]
  const batch = options.batch ?? PRUNE_BATCH
  const maxBatches = options.maxBatches ?? PRUNE_MAX_BATCHES
  let deleted = 0
  for (let i = 0; i < maxBatches; i++) {
    const result =
      await sql`delete from ${sql.table(table)} where ${sql.ref(key)} in (select ${sql.ref(key)} from ${sql.table(table)} where ${sql.ref(column)} < ${before} limit ${batch})`.execute(
        db,
      )
    const n = Number(result.numAffectedRows ?? 0)
    deleted += n
    if (n < batch) break
  }
  return deleted
}

export const SESSION_PRUNE_EVERY_MS = 10 * 60 * 1000

/**
 * Expired browser sessions (the store, http/plugins/session-store.ts, already ignores them on read)
 * and rate-limit windows that ended, deleted every 10 minutes in bounded batches.
 */
export function sessionCleanupJob(deps: { db: Kysely<Database>; clock: Clock }): Job<Record<string, number>> {
  return {
    everyMs: SESSION_PRUNE_EVERY_MS,
    run: async (log) => {
      const now = deps.clock.now()
      // A session expiring exactly now is already refused by the store (expires_at <= now).
      const sessions = await pruneInBatches(deps.db, 'sessions', now + 1)
      const rateLimits = await pruneInBatches(deps.db, 'rate_limit_hits', now)
      if (sessions || rateLimits) log.info({ sessions, rateLimits }, 'expired sessions and rate-limit windows deleted')
      return { sessions, rateLimits }
    },
  }
}
