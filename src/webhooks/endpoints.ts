// Webhook endpoints an operator registers (dashboard and CLI): a URL, the event types it wants
// (none = all) and a signing secret shown once, stored sealed with the token cipher. The delivery
// log and manual redelivery live here too.
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/events.js'
import { isLoopbackUrl } from '../config.js'
import type { Database } from '../db/schema.js'
import { DomainError } from '../errors.js'
import type { TokenCipher } from '../grants/token-cipher.js'
import { newDelivery, WEBHOOK_EVENT_TYPES, type WebhookEventType } from './outbox.js'
import { newWebhookSecret } from './signing.js'

type Db = Kysely<Database>

export function parseEventTypes(value: string | string[] | undefined): WebhookEventType[] {
  const items = (Array.isArray(value) ? value : (value ?? '').split(/[\s,]+/)).filter(Boolean)
  for (const item of items)
    if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(item))
      throw new DomainError('webhook.invalid', `Unknown event type "${item.slice(0, 40)}".`, {})
  return WEBHOOK_EVENT_TYPES.filter((t) => items.includes(t))
}

/** An https URL (plain http only to loopback, for local receivers), without credentials or fragment. */
export function checkEndpointUrl(value: string): string {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    throw new DomainError('webhook.invalid', 'The endpoint must be an absolute https URL.', {})
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackUrl(url.href)))
    throw new DomainError('webhook.invalid', 'The endpoint must use https (plain http only on loopback).', {})
  if (url.username || url.password || url.hash)
    throw new DomainError('webhook.invalid', 'The endpoint URL may not hold credentials or a fragment.', {})
  if (url.href.length > 2000) throw new DomainError('webhook.invalid', 'The endpoint URL is too long.', {})
  return url.href
}

export async function addEndpoint(
  db: Db,
  cipher: TokenCipher,
  input: { url: string; events: WebhookEventType[]; actor: string },
  now: number,
): Promise<{ id: number; secret: string }> {
  const url = checkEndpointUrl(input.url)
  const secret = newWebhookSecret()
  const sealed = cipher.seal(secret)
  return db.transaction().execute(async (trx) => {
    const { id } = await trx
      .insertInto('webhook_endpoints')
      .values({
        url,
        events: input.events.join(' '),
        key_id: sealed.keyId,
        secret: sealed.value,
        disabled_reason: null,
        failing_since: null,
        created_by: input.actor,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'webhook.endpoint_added',
      actor: input.actor,
      details: { endpointId: id, origin: new URL(url).origin, events: input.events },
    })
    return { id: Number(id), secret }
  })
}

export async function endpointSecret(db: Db, cipher: TokenCipher, endpointId: number): Promise<string> {
  const row = await db
    .selectFrom('webhook_endpoints')
    .select(['key_id', 'secret'])
    .where('id', '=', endpointId)
    .executeTakeFirstOrThrow()
  return cipher.open({ keyId: row.key_id, value: row.secret })
}

export async function listEndpoints(db: Db) {
  const endpoints = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'url', 'events', 'status', 'disabled_reason', 'failing_since', 'created_by', 'created_at'])
    .orderBy('id')
    .execute()
  const counts = await db
    .selectFrom('webhook_deliveries')
    .select(['endpoint_id', 'status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy(['endpoint_id', 'status'])
    .execute()
  return endpoints.map((e) => {
    const n = (status: string) => Number(counts.find((c) => c.endpoint_id === e.id && c.status === status)?.n ?? 0)
    return { ...e, pending: n('pending'), delivered: n('delivered'), failed: n('failed') }
  })
}

/** The newest deliveries of an endpoint, for the delivery log. */
export async function recentDeliveries(db: Db, endpointId: number, limit = 100) {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_events as e', 'e.id', 'd.event_id')
    .select([
      'd.id',
      'd.status',
      'd.attempts',
      'd.next_attempt_at',
      'd.last_status_code',
      'd.last_error',
      'd.last_attempt_at',
      'd.delivered_at',
      'd.created_at',
      'e.type',
      'e.message_id',
      'e.user_id',
    ])
    .where('d.endpoint_id', '=', endpointId)
    .orderBy('d.id', 'desc')
    .limit(limit)
    .execute()
}

export async function findEndpoint(db: Db, id: number) {
  const row = await db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst()
  if (!row) throw new DomainError('webhook.not_found', `There is no webhook endpoint ${id}.`, { id })
  return row
}

/** Sends the delivery's event again (same webhook-id, so receivers can deduplicate): a new pending delivery. */
export async function redeliver(
  db: Db,
  deliveryId: number,
  actor: string,
  now: number,
  endpointId?: number,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const old = await trx
      .selectFrom('webhook_deliveries')
      .select(['id', 'endpoint_id', 'event_id', 'user_id'])
      .where('id', '=', deliveryId)
      .executeTakeFirst()
    if (!old || (endpointId !== undefined && old.endpoint_id !== endpointId))
      throw new DomainError('webhook.not_found', `There is no delivery ${deliveryId}.`, { id: deliveryId })
    const { id } = await trx
      .insertInto('webhook_deliveries')
      .values(newDelivery(old.endpoint_id, old.event_id, old.user_id, now))
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'webhook.redelivered',
      actor,
      details: { endpointId: old.endpoint_id, deliveryId, newDeliveryId: id },
    })
    return Number(id)
  })
}

export async function setEndpointEnabled(db: Db, id: number, enabled: boolean, actor: string, now: number) {
  await findEndpoint(db, id)
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('webhook_endpoints')
      .set(
        enabled
          ? { status: 'active', disabled_reason: null, failing_since: null, updated_at: now }
          : { status: 'disabled', disabled_reason: `disabled by ${actor}`, updated_at: now },
      )
      .where('id', '=', id)
      .execute()
    await recordAudit(trx, now, {
      type: enabled ? 'webhook.endpoint_enabled' : 'webhook.endpoint_disabled',
      actor,
      details: { endpointId: id },
    })
  })
}

export async function removeEndpoint(db: Db, id: number, actor: string, now: number): Promise<void> {
  await findEndpoint(db, id)
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('webhook_deliveries').where('endpoint_id', '=', id).execute()
    await trx.deleteFrom('webhook_endpoints').where('id', '=', id).execute()
    await recordAudit(trx, now, { type: 'webhook.endpoint_removed', actor, details: { endpointId: id } })
  })
}

/** For /metrics: deliveries waiting or given up, and endpoints active or disabled. */
export async function webhookCounts(
  db: Db,
): Promise<{ deliveries: Record<'pending' | 'failed', number>; endpoints: Record<'active' | 'disabled', number> }> {
  const [deliveries, endpoints] = await Promise.all([
    db
      .selectFrom('webhook_deliveries')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .where('status', 'in', ['pending', 'failed'])
      .groupBy('status')
      .execute(),
    db
      .selectFrom('webhook_endpoints')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .groupBy('status')
      .execute(),
  ])
  const result = { deliveries: { pending: 0, failed: 0 }, endpoints: { active: 0, disabled: 0 } }
  for (const r of deliveries)
    if (r.status === 'pending' || r.status === 'failed') result.deliveries[r.status] = Number(r.n)
  for (const r of endpoints) result.endpoints[r.status] = Number(r.n)
  return result
}
