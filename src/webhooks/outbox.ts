// The durable outbox of webhook events: an event and one delivery row per subscribed active
// endpoint, written in the SAME transaction as the change the event reports (grants/change.ts,
// links/links.ts consumeLink), so an event exists exactly when its change committed. The delivery
// job (delivery.ts) sends them after the commit (src/README.md, "Webhooks").
import { randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { chunked } from '../db/batch.js'
import type { Database } from '../db/schema.js'

export const WEBHOOK_EVENT_TYPES = [
  'grant.created',
  'grant.scopes_changed',
  'grant.revoked',
  'grant.broken',
  'rollout.user_covered',
  'link.used',
] as const
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number]

type Trx = Transaction<Database> | Kysely<Database>

export function newMessageId(): string {
  return `msg_${randomBytes(16).toString('base64url')}`
}

/** True when some endpoint is active: otherwise nobody listens and nothing need be computed. */
export async function anyActiveEndpoint(db: Trx): Promise<boolean> {
  const row = await db
    .selectFrom('webhook_endpoints')
    .select('id')
    .where('status', '=', 'active')
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

export interface WebhookEventInput {
  type: WebhookEventType
  userId: number | null
  data: Record<string, unknown>
}

/**
 * Writes one event for the user (their Carta and external ids are added to `data`) and a pending
 * delivery per subscribed endpoint. Never a token in `data`: callers pass ids and scopes only.
 */
export async function enqueueWebhookEvent(db: Trx, event: WebhookEventInput, now: number): Promise<void> {
  await enqueueWebhookEvents(db, [event], now)
}

/** enqueueWebhookEvent for many events (an import batch): a few multi-row statements, same rows. */
export async function enqueueWebhookEvents(db: Trx, events: WebhookEventInput[], now: number): Promise<void> {
  if (events.length === 0) return
  const endpoints = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'events'])
    .where('status', '=', 'active')
    .execute()
  const subscribed = (type: WebhookEventType) =>
    endpoints.filter((r) => r.events === '' || r.events.split(' ').includes(type)).map((r) => r.id)
  const wanted = events.filter((e) => subscribed(e.type).length > 0)
  if (wanted.length === 0) return
  const userIds = [...new Set(wanted.flatMap((e) => (e.userId === null ? [] : [e.userId])))]
  const users = new Map<number, { carta_user_id: string | null; external_user_id: string | null }>()
  for (const ids of chunked(userIds)) {
    const rows = await db
      .selectFrom('end_users')
      .select(['id', 'carta_user_id', 'external_user_id'])
      .where('id', 'in', ids)
      .execute()
    for (const row of rows) users.set(row.id, row)
  }
  const timestamp = new Date(now).toISOString()
  const rows = wanted.map((event) => {
    const user = event.userId === null ? undefined : users.get(event.userId)
    const messageId = newMessageId()
    const payload = JSON.stringify({
      type: event.type,
      timestamp,
      data: {
        id: messageId,
        ...(user ? { cartaUserId: user.carta_user_id, externalUserId: user.external_user_id } : {}),
        ...event.data,
      },
    })
    return { message_id: messageId, type: event.type, user_id: event.userId, payload, created_at: now }
  })
  const ids = new Map<string, number>()
  for (const chunk of chunked(rows, 5)) {
    const inserted = await db.insertInto('webhook_events').values(chunk).returning(['id', 'message_id']).execute()
    for (const row of inserted) ids.set(row.message_id, Number(row.id))
  }
  const deliveries = wanted.flatMap((event, i) =>
    subscribed(event.type).map((endpointId) =>
      newDelivery(endpointId, ids.get(rows[i]!.message_id)!, event.userId ?? 0, now),
    ),
  )
  for (const chunk of chunked(deliveries, 11)) await db.insertInto('webhook_deliveries').values(chunk).execute()
}

/** Rollouts (active) in which the user is covered: compared before and after a grant change. */
/** A webhook_deliveries row due now, never tried (a new event's, or an operator's send-again). */
export function newDelivery(endpointId: number, eventId: number, userId: number, now: number) {
  return {
    endpoint_id: endpointId,
    event_id: eventId,
    user_id: userId,
    next_attempt_at: now,
    lock_owner: null,
    lock_until: null,
    last_status_code: null,
    last_error: null,
    last_attempt_at: null,
    delivered_at: null,
    created_at: now,
  }
}

export async function coveredRollouts(db: Trx, userId: number): Promise<Set<number>> {
  const active = await db.selectFrom('rollouts').select('id').where('status', '=', 'active').execute()
  if (active.length === 0) return new Set()
  const rows = await db
    .selectFrom('rollout_members')
    .select('rollout_id')
    .where('user_id', '=', userId)
    .where(
      'rollout_id',
      'in',
      active.map((r) => r.id),
    )
    .where('state', '=', 'covered')
    .execute()
  return new Set(rows.map((r) => r.rollout_id))
}
