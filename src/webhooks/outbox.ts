// The durable outbox of webhook events: an event and one delivery row per subscribed active
// endpoint, written in the SAME transaction as the change the event reports (grants/change.ts,
// links/links.ts consumeLink), so an event exists exactly when its change committed. The delivery
// job (delivery.ts) sends them after the commit (src/README.md, "Webhooks").
import { randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
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

/** Active endpoints subscribed to `type` (an empty list means every type). */
async function subscribers(db: Trx, type: WebhookEventType): Promise<number[]> {
  const rows = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'events'])
    .where('status', '=', 'active')
    .execute()
  return rows.filter((r) => r.events === '' || r.events.split(' ').includes(type)).map((r) => r.id)
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

/**
 * Writes one event for the user (their Carta and external ids are added to `data`) and a pending
 * delivery per subscribed endpoint. Never a token in `data`: callers pass ids and scopes only.
 */
export async function enqueueWebhookEvent(
  db: Trx,
  event: { type: WebhookEventType; userId: number | null; data: Record<string, unknown> },
  now: number,
): Promise<void> {
  const endpoints = await subscribers(db, event.type)
  if (endpoints.length === 0) return
  const user =
    event.userId === null
      ? undefined
      : await db
          .selectFrom('end_users')
          .select(['carta_user_id', 'external_user_id'])
          .where('id', '=', event.userId)
          .executeTakeFirst()
  const messageId = newMessageId()
  const payload = JSON.stringify({
    type: event.type,
    timestamp: new Date(now).toISOString(),
    data: {
      id: messageId,
      ...(user ? { cartaUserId: user.carta_user_id, externalUserId: user.external_user_id } : {}),
      ...event.data,
    },
  })
  const { id: eventId } = await db
    .insertInto('webhook_events')
    .values({ message_id: messageId, type: event.type, user_id: event.userId, payload, created_at: now })
    .returning('id')
    .executeTakeFirstOrThrow()
  await db
    .insertInto('webhook_deliveries')
    .values(
      endpoints.map((endpointId) => ({
        endpoint_id: endpointId,
        event_id: Number(eventId),
        user_id: event.userId ?? 0,
        next_attempt_at: now,
        lock_owner: null,
        lock_until: null,
        last_status_code: null,
        last_error: null,
        last_attempt_at: null,
        delivered_at: null,
        created_at: now,
      })),
    )
    .execute()
}

/** Rollouts (active) in which the user is covered: compared before and after a grant change. */
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
