// Table types of webhooks: endpoints, the outbox of events and their deliveries (migrations/0008_api.ts).
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export interface WebhookEndpointTable {
  id: Generated<number>
  url: string
  /** Space-separated event types; empty = every type. */
  events: string
  /** Key id and sealed value of the whsec_ secret (src/grants/token-cipher.ts). */
  key_id: string
  secret: string
  status: Generated<'active' | 'disabled'>
  disabled_reason: string | null
  /** Since when every attempt has failed (null after a success). */
  failing_since: Millis | null
  created_by: string
  created_at: Millis
  updated_at: Millis
}

export interface WebhookEventTable {
  id: Generated<number>
  /** webhook-id: the same on every attempt and redelivery (receivers deduplicate on it). */
  message_id: string
  type: string
  user_id: number | null
  /** The JSON body sent, exactly. */
  payload: string
  created_at: Millis
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface WebhookDeliveryTable {
  id: Generated<number>
  endpoint_id: number
  event_id: number
  /** Ordering key (0 for events without a user). */
  user_id: number
  status: Generated<DeliveryStatus>
  attempts: Generated<number>
  next_attempt_at: Millis
  lock_owner: string | null
  lock_until: Millis | null
  last_status_code: number | null
  last_error: string | null
  last_attempt_at: Millis | null
  delivered_at: Millis | null
  created_at: Millis
}

export interface WebhookTables {
  webhook_endpoints: WebhookEndpointTable
  webhook_events: WebhookEventTable
  webhook_deliveries: WebhookDeliveryTable
}
