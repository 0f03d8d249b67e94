// Sending the outbox (src/README.md, "Webhooks"): at-least-once, one user's events to one endpoint
// in order, exponential backoff over more than 24 hours, endpoints disabled after sustained failure.
//
// A delivery is due when it is pending, its time has come, its lease (if any) has lapsed, its
// endpoint is active, and no EARLIER pending delivery exists for the same endpoint and user (that
// one goes first, however long its retries take). Each instance takes a due row with one
// conditional UPDATE (a lease, as the revocation queue does), so several instances share the work
// and never send one row twice at once. Due rows are sent concurrently (WEBHOOK_CONCURRENCY in
// flight, default 8): the due set holds at most one row per endpoint and user (the earliest
// pending), so concurrency is across endpoints and users only and never reorders one user's
// events. The row is marked delivered only after a 2xx; a crash in
// between leaves it pending, to be sent again when the lease lapses (at-least-once: receivers
// deduplicate on webhook-id).
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { sql } from 'kysely'
import { recordAudit } from '../audit/events.js'
import type { Clock } from '../clock.js'
import type { Db } from '../db/index.js'
import type { TokenCipher } from '../grants/token-cipher.js'
import type { Job } from '../jobs/runner.js'
import type { Logger } from '../log.js'
import { webhookHeaders } from './signing.js'

/**
 * Waits after the 1st, 2nd… failed attempt: the schedule Standard Webhooks suggests (5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h, 10 h): 8 attempts over 27.6 hours.
 */
export const RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]
export const MAX_ATTEMPTS = RETRY_SCHEDULE_MS.length + 1
/** An endpoint failing this long, with a delivery out of attempts, is disabled. */
export const DISABLE_AFTER_MS = 24 * 60 * 60 * 1000
export const DELIVERY_INTERVAL_MS = 5_000
/** A lease outlasts an attempt (its timeout) several times over: 60 s at the default 10 s. */
const LEASE_PER_TIMEOUT = 6
const BATCH = 50
const MAX_ROUNDS = 20

export interface DeliveryDeps {
  db: Db
  clock: Clock
  cipher: TokenCipher
  /** Per attempt (default 10 s). */
  timeoutMs?: number
  /** Deliveries in flight at once in this process (default 8). */
  concurrency?: number
}

export interface DeliveryRun {
  sent: number
  failed: number
  disabled: number
}

export function webhookDeliveryJob(deps: DeliveryDeps): Job<DeliveryRun> {
  return {
    everyMs: DELIVERY_INTERVAL_MS,
    run: async (log) => {
      const result = await processDueDeliveries(deps, log)
      if (result.sent + result.failed > 0) log.info(result, 'webhook deliveries attempted')
      return result
    },
  }
}

/** The ids of due deliveries, oldest first (see the header comment for "due"). */
async function dueDeliveries(db: Db, now: number): Promise<number[]> {
  const rows = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .select('d.id')
    .where('d.status', '=', 'pending')
    .where('d.next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('d.lock_until', 'is', null), eb('d.lock_until', '<', now)]))
    .where('e.status', '=', 'active')
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('webhook_deliveries as p')
            .select(sql<number>`1`.as('one'))
            .whereRef('p.endpoint_id', '=', 'd.endpoint_id')
            .whereRef('p.user_id', '=', 'd.user_id')
            .where('p.status', '=', 'pending')
            .whereRef('p.id', '<', 'd.id'),
        ),
      ),
    )
    .orderBy('d.id')
    .limit(BATCH)
    .execute()
  return rows.map((r) => r.id)
}

export async function processDueDeliveries(deps: DeliveryDeps, log: Logger): Promise<DeliveryRun> {
  const { db, clock } = deps
  const owner = `${hostname()}:${process.pid}:${randomUUID()}`
  const run: DeliveryRun = { sent: 0, failed: 0, disabled: 0 }
  // Rounds: a user's next event becomes due once the one before it is delivered.
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let leased = 0
    await inParallel(await dueDeliveries(db, clock.now()), deps.concurrency ?? 8, async (id) => {
      const now = clock.now()
      const lease = await db
        .updateTable('webhook_deliveries')
        .set({ lock_owner: owner, lock_until: now + LEASE_PER_TIMEOUT * (deps.timeoutMs ?? 10_000) })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', now)]))
        .executeTakeFirst()
      if (Number(lease.numUpdatedRows) !== 1) return
      leased++
      const outcome = await attempt(deps, id, owner, log)
      if (outcome === 'sent') run.sent++
      else if (outcome !== 'skipped') run.failed++
      if (outcome === 'disabled') run.disabled++
    })
    if (leased === 0) break
  }
  return run
}

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first error after all settle. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const errors: unknown[] = []
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!
      await fn(item).catch((err) => errors.push(err))
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (errors.length) throw errors[0]
}

async function attempt(
  deps: DeliveryDeps,
  id: number,
  owner: string,
  log: Logger,
): Promise<'sent' | 'retry' | 'failed' | 'disabled' | 'skipped'> {
  const { db, clock, cipher } = deps
  const row = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_events as ev', 'ev.id', 'd.event_id')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .select([
      'd.attempts',
      'd.endpoint_id',
      'ev.message_id',
      'ev.type',
      'ev.payload',
      'e.url',
      'e.key_id',
      'e.secret',
      'e.status as endpoint_status',
    ])
    .where('d.id', '=', id)
    .executeTakeFirst()
  if (row?.endpoint_status !== 'active') {
    await db
      .updateTable('webhook_deliveries')
      .set({ lock_owner: null, lock_until: null })
      .where('id', '=', id)
      .execute()
    return 'skipped'
  }
  const secret = cipher.open({ keyId: row.key_id, value: row.secret })
  const started = clock.now()
  let status: number | null = null
  let error: string | null = null
  try {
    const res = await fetch(row.url, {
      method: 'POST',
      headers: webhookHeaders(secret, row.message_id, started, row.payload),
      body: row.payload,
      redirect: 'manual',
      signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
    })
    status = res.status
    await res.body?.cancel().catch(() => {})
    if (status < 200 || status > 299) error = `HTTP ${status}`
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } }
    const cause = e.cause?.code ?? e.cause?.errors?.[0]?.code ?? e.cause?.message ?? e.message
    error = e.name === 'TimeoutError' ? 'no answer in time' : String(cause).slice(0, 200)
  }
  const now = clock.now()
  const attempts = row.attempts + 1
  const origin = new URL(row.url).origin
  // Only the lease holder records the outcome (a lapsed lease may have passed the row on).
  const mine = (q: ReturnType<typeof db.updateTable<'webhook_deliveries'>>) =>
    q.where('id', '=', id).where('lock_owner', '=', owner)
  if (error === null) {
    await db.transaction().execute(async (trx) => {
      await mine(trx.updateTable('webhook_deliveries'))
        .set({
          status: 'delivered',
          attempts,
          delivered_at: now,
          last_status_code: status,
          last_error: null,
          last_attempt_at: now,
          lock_owner: null,
          lock_until: null,
        })
        .execute()
      await trx
        .updateTable('webhook_endpoints')
        .set({ failing_since: null })
        .where('id', '=', row.endpoint_id)
        .where('failing_since', 'is not', null)
        .execute()
    })
    log.info({ deliveryId: id, endpointId: row.endpoint_id, type: row.type, status, attempts }, 'webhook delivered')
    return 'sent'
  }
  const exhausted = attempts >= MAX_ATTEMPTS
  let disabled = false
  await db.transaction().execute(async (trx) => {
    await mine(trx.updateTable('webhook_deliveries'))
      .set({
        status: exhausted ? 'failed' : 'pending',
        attempts,
        next_attempt_at: exhausted ? now : now + RETRY_SCHEDULE_MS[attempts - 1]!,
        last_status_code: status,
        last_error: error,
        last_attempt_at: now,
        lock_owner: null,
        lock_until: null,
      })
      .execute()
    const endpoint = await trx
      .selectFrom('webhook_endpoints')
      .select(['failing_since'])
      .where('id', '=', row.endpoint_id)
      .executeTakeFirstOrThrow()
    const since = endpoint.failing_since === null ? now : Number(endpoint.failing_since)
    if (endpoint.failing_since === null)
      await trx.updateTable('webhook_endpoints').set({ failing_since: now }).where('id', '=', row.endpoint_id).execute()
    if (exhausted && now - since >= DISABLE_AFTER_MS) {
      const reason = `every delivery failed since ${new Date(since).toISOString()} (last: ${error})`
      await trx
        .updateTable('webhook_endpoints')
        .set({ status: 'disabled', disabled_reason: reason, updated_at: now })
        .where('id', '=', row.endpoint_id)
        .where('status', '=', 'active')
        .execute()
      await recordAudit(trx, now, {
        type: 'webhook.endpoint_disabled',
        actor: 'system',
        details: { endpointId: row.endpoint_id, origin, reason },
      })
      disabled = true
    }
  })
  const fields = { deliveryId: id, endpointId: row.endpoint_id, origin, type: row.type, status, error, attempts }
  if (disabled) log.error(fields, 'webhook endpoint disabled after sustained failure')
  else if (exhausted) log.warn(fields, 'webhook delivery failed for good')
  else log.warn({ ...fields, retryInMs: RETRY_SCHEDULE_MS[attempts - 1] }, 'webhook delivery failed; will retry')
  return disabled ? 'disabled' : exhausted ? 'failed' : 'retry'
}
