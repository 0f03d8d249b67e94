// One request budget per Carta client id, shared by every instance through the database (src/README.md,
// "Imports"). Carta documents bursts of 10 requests/second and 300 requests/minute per client, and
// answers 429 with Retry-After or RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers) beyond
// them; a 429 blocks the client id for every instance until the time Carta named.
//
// Each limit is a GCRA (generic cell rate algorithm, ITU-T I.371, virtual-scheduling form): the row
// keeps the theoretical arrival time (TAT) of the next request; a request at `now` conforms when
// TAT - now <= (burst - 1) * T, and moves TAT to max(TAT, now) + T. Conforming requests then satisfy
// t[i+n] - t[i] >= n*T - (burst-1)*T, so ANY window shorter than the period P holds at most
// burst + floor(W / T) of them; with T = P / (limit - burst + 1) that is at most `limit` — a sliding
// guarantee, unlike fixed windows, which let twice the limit through across a window boundary.
import type { Db } from '../db/index.js'

export interface BudgetLimits {
  /** At most this many requests in any one-second window. */
  perSecond: number
  /** At most this many requests in any one-minute window. */
  perMinute: number
}

interface Gcra {
  /** Emission interval in ms (rounded up: never faster than the limit allows). */
  t: number
  /** Requests that may go at once. */
  burst: number
}

/**
 * The two schedules. The burst is what the per-second limit leaves once the steady rate the minute
 * allows is reserved, so a burst is followed by the minute's pace rather than by a stall.
 */
export function schedules(limits: BudgetLimits): { second: Gcra; minute: Gcra } {
  const steadyPerSecond = Math.ceil(limits.perMinute / 60)
  const burst = Math.max(1, Math.min(limits.perSecond, limits.perSecond - steadyPerSecond + 1))
  const minuteBurst = Math.min(burst, limits.perMinute)
  return {
    second: { t: Math.ceil(1000 / (limits.perSecond - burst + 1)), burst },
    minute: { t: Math.ceil(60_000 / (limits.perMinute - minuteBurst + 1)), burst: minuteBurst },
  }
}

/** Requests per second the budget sustains (for estimates). */
export function steadyRate(limits: BudgetLimits): number {
  const { second, minute } = schedules(limits)
  return 1000 / Math.max(second.t, minute.t)
}

/** 0 when a request at `now` conforms, otherwise the ms until it would. */
function gcraWait(tat: number, now: number, g: Gcra): number {
  return Math.max(0, tat - (g.burst - 1) * g.t - now)
}

/**
 * Takes one request from the client id's budget: 0 when granted, otherwise the milliseconds to
 * wait before asking again. The update is a compare-and-set on the budget row (one conditional
 * UPDATE, atomic on SQLite and PostgreSQL alike), so concurrent instances never both take the
 * same slot: the loser reads the row again.
 */
export async function takeRequest(db: Db, clientId: string, limits: BudgetLimits, now: number): Promise<number> {
  await db
    .insertInto('carta_budgets')
    .values({ client_id: clientId })
    .onConflict((oc) => oc.column('client_id').doNothing())
    .execute()
  const { second, minute } = schedules(limits)
  for (let attempt = 0; attempt < 50; attempt++) {
    const row = await db
      .selectFrom('carta_budgets')
      .select(['second_tat', 'minute_tat', 'blocked_until'])
      .where('client_id', '=', clientId)
      .executeTakeFirstOrThrow()
    const blocked = Number(row.blocked_until)
    if (blocked > now) return blocked - now
    const secondTat = Number(row.second_tat)
    const minuteTat = Number(row.minute_tat)
    const wait = Math.max(gcraWait(secondTat, now, second), gcraWait(minuteTat, now, minute))
    if (wait > 0) return wait
    const taken = await db
      .updateTable('carta_budgets')
      .set({
        second_tat: Math.max(secondTat, now) + second.t,
        minute_tat: Math.max(minuteTat, now) + minute.t,
      })
      .where('client_id', '=', clientId)
      .where('second_tat', '=', row.second_tat)
      .where('minute_tat', '=', row.minute_tat)
      .where('blocked_until', '=', row.blocked_until)
      .executeTakeFirst()
    if (Number(taken.numUpdatedRows) === 1) return 0
  }
  // Heavy contention: back off a little rather than spin.
  return 20
}

/** Carta answered 429: nobody uses this client id before `until` (only ever moved later). */
export async function blockUntil(db: Db, clientId: string, until: number): Promise<void> {
  await db
    .insertInto('carta_budgets')
    .values({ client_id: clientId, blocked_until: until })
    .onConflict((oc) =>
      oc.column('client_id').doUpdateSet({ blocked_until: until }).where('carta_budgets.blocked_until', '<', until),
    )
    .execute()
}
