// One request budget per Carta client id, shared by every instance through the database (src/README.md,
// "Imports"). Carta documents 10 requests/second bursts and 300 requests/minute per client, and
// answers 429 with Retry-After or RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers) beyond
// them; discovery takes its configured share in fixed one-second and one-minute windows, and a 429
// blocks the client id for every instance until the time Carta named.
import type { Db } from '../db/index.js'

export interface BudgetLimits {
  perSecond: number
  perMinute: number
}

/**
 * Takes one request from the client id's budget: 0 when granted, otherwise the milliseconds to
 * wait before asking again. Compare-and-set on the budget row, so concurrent instances never
 * both take the last request of a window.
 */
export async function takeRequest(db: Db, clientId: string, limits: BudgetLimits, now: number): Promise<number> {
  await db
    .insertInto('carta_budgets')
    .values({ client_id: clientId })
    .onConflict((oc) => oc.column('client_id').doNothing())
    .execute()
  for (let attempt = 0; attempt < 50; attempt++) {
    const row = await db
      .selectFrom('carta_budgets')
      .selectAll()
      .where('client_id', '=', clientId)
      .executeTakeFirstOrThrow()
    const blocked = Number(row.blocked_until)
    if (blocked > now) return blocked - now
    const secondStart = Number(row.second_start)
    const minuteStart = Number(row.minute_start)
    const second =
      now - secondStart >= 1000 || now < secondStart
        ? { start: now, count: 0 }
        : { start: secondStart, count: row.second_count }
    const minute =
      now - minuteStart >= 60_000 || now < minuteStart
        ? { start: now, count: 0 }
        : { start: minuteStart, count: row.minute_count }
    if (second.count >= limits.perSecond) return Math.max(1, second.start + 1000 - now)
    if (minute.count >= limits.perMinute) return Math.max(1, minute.start + 60_000 - now)
    const taken = await db
      .updateTable('carta_budgets')
      .set({
        second_start: second.start,
        second_count: second.count + 1,
        minute_start: minute.start,
        minute_count: minute.count + 1,
      })
      .where('client_id', '=', clientId)
      .where('second_start', '=', secondStart)
      .where('second_count', '=', row.second_count)
      .where('minute_start', '=', minuteStart)
      .where('minute_count', '=', row.minute_count)
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
