// The @fastify/rate-limit store kept in the database (table rate_limit_hits, migration 0005), so
// every instance on one database counts the same hits: N instances allow the limit once, not N
// times (src/README.md, "Several instances"). A fixed window per key that starts with its first
// hit; ended windows are deleted by the job `sessions` (db/prune.ts).
//
// Budget claims instead of a write per request: an instance takes a slice of the window's budget
// with one atomic upsert (`hits = hits + n`) and spends it locally; only slice positions up to the
// limit are handed out, so all instances together never admit more than the limit. A slice is
// 1/50 of the limit for a fresh window, then 1/8 of what is left, at most 100 and at least 1: a
// small limit (sign-in: 10 a minute) is still one upsert per request and exact, a large one
// (the API's 1200 per key) costs one write per dozens of requests. The price: units an instance
// claimed but did not use before the window ended are lost, so the instances together may admit
// slightly fewer than the limit (at most what the last slices held), never more.
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
  // This instance's unspent slices, per counter key (one map per app: its stores share it).
  const budgets = new Map<string, Budget>()

  /** Adds `want` hits to the window's counter; the counter after it and when the window ends. */
  async function claim(id: string, want: number, timeWindow: number): Promise<{ hits: number; resetAt: number }> {
    const now = clock.now()
    const { rows } = await sql<{ hits: number; reset_at: number }>`
      insert into rate_limit_hits (key, hits, reset_at) values (${id}, ${want}, ${now + timeWindow})
      on conflict (key) do update set
        hits = case when rate_limit_hits.reset_at <= ${now} then ${want} else rate_limit_hits.hits + ${want} end,
        reset_at = case when rate_limit_hits.reset_at <= ${now} then ${now + timeWindow} else rate_limit_hits.reset_at end
      returning hits, reset_at`.execute(db)
    const row = rows[0]!
    return { hits: Number(row.hits), resetAt: Number(row.reset_at) }
  }

  /** One hit: `current` is this hit's position in the window (over `max`: refused). */
  async function take(id: string, timeWindow: number, max: number): Promise<{ current: number; ttl: number }> {
    for (;;) {
      const now = clock.now()
      let budget = budgets.get(id)
      if (budget && budget.resetAt <= now) {
        budgets.delete(id)
        budget = undefined
      }
      if (budget && budget.next <= budget.last) return { current: budget.next++, ttl: budget.resetAt - now }
      if (budget?.exhausted) return { current: max + 1, ttl: budget.resetAt - now }
      if (budget?.claiming) {
        await budget.claiming
        continue
      }
      // Claim a slice (one claim per key at a time; concurrent hits wait for it, then take from it).
      const left = budget ? budget.left : max
      const want = Math.min(MAX_SLICE, Math.max(1, Math.floor(budget ? left / 8 : max / 50)))
      const pending: Budget = budget ?? { resetAt: Number.POSITIVE_INFINITY, next: 1, last: 0, left, exhausted: false }
      if (!budget) {
        if (budgets.size >= MAX_KEYS) forgetEnded(budgets, now)
        budgets.set(id, pending)
      }
      pending.claiming = claim(id, want, timeWindow).then(
        ({ hits, resetAt }) => {
          // Positions hits-want+1 … hits are this instance's; those past max are nobody's.
          const first = hits - want + 1
          pending.next = first
          pending.last = Math.min(hits, max)
          pending.left = max - hits
          pending.exhausted = pending.last < pending.next || hits >= max
          pending.resetAt = resetAt
          pending.claiming = undefined
        },
        (err: unknown) => {
          budgets.delete(id)
          throw err
        },
      )
      await pending.claiming
    }
  }

  return class DatabaseRateLimitStore {
    readonly prefix: string
    readonly window: number

    constructor(params: object = {}, prefix = '') {
      const p = params as RouteParams
      this.prefix = prefix || routePrefix(p)
      this.window = typeof p.timeWindow === 'number' ? p.timeWindow : 60_000
    }

    // The plugin passes the window and max after the callback; its typings name only two.
    incr(key: string, callback: IncrCallback, timeWindow: number = this.window, max = 1): void {
      take(`${this.prefix}${key}`.slice(0, 500), timeWindow, max).then(
        (result) => callback(null, result),
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

/** Largest slice of a window's budget one claim takes. */
const MAX_SLICE = 100
/** Keys remembered at once (per-IP limits see many); past it, ended windows are forgotten. */
const MAX_KEYS = 10_000

interface Budget {
  resetAt: number
  /** The next position to hand out and the last one this instance holds (next > last: none left). */
  next: number
  last: number
  /** The window's budget left after the last claim, for sizing the next one. */
  left: number
  /** The last claim reached the limit: refuse until the window ends, without asking again. */
  exhausted: boolean
  claiming?: Promise<void> | undefined
}

function forgetEnded(budgets: Map<string, Budget>, now: number): void {
  for (const [key, budget] of budgets) if (budget.resetAt <= now && !budget.claiming) budgets.delete(key)
  // Still full (many live keys): forget them all; unspent slices are lost, nothing is over-admitted.
  if (budgets.size >= MAX_KEYS) for (const [key, budget] of budgets) if (!budget.claiming) budgets.delete(key)
}

function routePrefix(params: RouteParams): string {
  const info = params.routeInfo
  if (!info?.url) return 'global|'
  const method = Array.isArray(info.method) ? info.method.join(',') : (info.method ?? '')
  return `${method} ${info.url}|`
}
