// The @fastify/rate-limit store kept in the database (table rate_limit_hits, migration 0005), so
// every instance on one database counts the same hits: N instances allow the limit once, not N
// times (src/README.md, "Several instances"). One atomic upsert per counted request: a fixed window
// per key that starts with its first hit; ended windows are deleted by the job `sessions`
// (db/prune.ts).
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Clock } from '../../clock.js'
import type { Database } from '../../db/schema.js'

type IncrCallback = (err: Error | null, result?: { current: number; ttl: number }) => void

interface RouteParams {
  routeInfo?: { method?: string | string[]; url?: string }
  timeWindow?: unknown
}

/** A store class as @fastify/rate-limit's `store` option wants it (constructed by the plugin). */
export function databaseRateLimitStore(db: Kysely<Database>, clock: Clock) {
  return class DatabaseRateLimitStore {
    readonly prefix: string
    readonly window: number

    constructor(params: object = {}, prefix = '') {
      const p = params as RouteParams
      this.prefix = prefix || routePrefix(p)
      this.window = typeof p.timeWindow === 'number' ? p.timeWindow : 60_000
    }

    // The plugin passes the window (and max) after the callback; its typings name only two.
    incr(key: string, callback: IncrCallback, timeWindow: number = this.window): void {
      const now = clock.now()
      const id = `${this.prefix}${key}`.slice(0, 500)
      sql<{ hits: number; reset_at: number }>`
        insert into rate_limit_hits (key, hits, reset_at) values (${id}, 1, ${now + timeWindow})
        on conflict (key) do update set
          hits = case when rate_limit_hits.reset_at <= ${now} then 1 else rate_limit_hits.hits + 1 end,
          reset_at = case when rate_limit_hits.reset_at <= ${now} then ${now + timeWindow} else rate_limit_hits.reset_at end
        returning hits, reset_at`
        .execute(db)
        .then(
          ({ rows }) => {
            const row = rows[0]!
            callback(null, { current: Number(row.hits), ttl: Math.max(0, Number(row.reset_at) - now) })
          },
          (err: Error) => callback(err),
        )
    }

    /** Each route with its own limit counts apart (as the plugin's own stores do). */
    // Called with the route's merged rate-limit parameters (routeInfo, timeWindow…), whatever the typings say.
    child(params: object): DatabaseRateLimitStore {
      return new DatabaseRateLimitStore(params as RouteParams, routePrefix(params as RouteParams))
    }
  }
}

function routePrefix(params: RouteParams): string {
  const info = params.routeInfo
  if (!info?.url) return 'global|'
  const method = Array.isArray(info.method) ? info.method.join(',') : (info.method ?? '')
  return `${method} ${info.url}|`
}
