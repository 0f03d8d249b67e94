// Append-only audit trail. Every grant, refresh, revocation, link issued or used, retirement
// and operator action writes one event. Details are JSON and must never hold a token or secret.
import type { Kysely } from 'kysely'
import { insertRows } from '../db/batch.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'

/**
 * Every event type the app writes, once: the writer accepts only these, and the audit page's
 * filter offers exactly these.
 */
export const AUDIT_EVENT_TYPES = [
  'grant.created',
  'grant.superseded',
  'grant.refreshed',
  'grant.scopes_changed',
  'grant.broken',
  'grant.revoked_by_operator',
  'token.revoked',
  'token.revocation_failed',
  'link.issued',
  'links.issued_bulk',
  'links.exported',
  'link.used',
  'link.rejected',
  'link.identity_mismatch',
  'link.revoked',
  'mail.campaign_created',
  'mail.campaign_paused',
  'mail.campaign_resumed',
  'mail.opted_out',
  'mail.failed',
  'rollout.created',
  'rollout.archived',
  'rollout.unarchived',
  'app.retired',
  'app.successor_set',
  'report.run',
  'grants.imported',
  'discovery.paused',
  'discovery.resumed',
  'api_key.created',
  'api_key.revoked',
  'api.token_returned',
  'api.link_issued',
  'api.connect_session_created',
  'webhook.endpoint_added',
  'webhook.endpoint_removed',
  'webhook.endpoint_disabled',
  'webhook.endpoint_enabled',
  'webhook.redelivered',
  'access.refused',
  'operator.created',
  'operator.role_changed',
  'operator.disabled',
  'operator.enabled',
  'operator.sign_in_refused',
] as const

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number]

export interface AuditEvent {
  type: AuditEventType
  /** "user:<id>", "operator:<username>", "system" or "anonymous". */
  actor: string
  userId?: number | null
  grantId?: number | null
  appId?: number | null
  rolloutId?: number | null
  details?: Record<string, unknown>
}

/** Writes one event; pass the transaction so the event lands with the change it records. */
export async function recordAudit(db: Kysely<Database>, at: number, event: AuditEvent): Promise<void> {
  const values = [
    at,
    event.type,
    event.actor,
    event.userId ?? null,
    event.grantId ?? null,
    event.appId ?? null,
    event.rolloutId ?? null,
    JSON.stringify(event.details ?? {}),
  ] as const
  // Outside a transaction (e.g. every token the API returns) the insert is compiled once
  // (db/prepared.ts); a transaction is a new Kysely object each time, so it builds as usual.
  if (db.isTransaction) await insertAudit(db, ...values).execute()
  else await preparedInsertAudit(db, ...values)
}

/** Writes many events in order (an import batch), a few multi-row INSERTs. */
export async function recordAudits(db: Kysely<Database>, at: number, events: AuditEvent[]): Promise<void> {
  await insertRows(
    db,
    'audit_events',
    events.map((event) => auditRow(at, event)),
  )
}

function auditRow(at: number, event: AuditEvent) {
  return {
    at,
    type: event.type,
    actor: event.actor,
    user_id: event.userId ?? null,
    grant_id: event.grantId ?? null,
    app_id: event.appId ?? null,
    rollout_id: event.rolloutId ?? null,
    details: JSON.stringify(event.details ?? {}),
  }
}

const insertAudit = (
  db: Kysely<Database>,
  at: number,
  type: string,
  actor: string,
  userId: number | null,
  grantId: number | null,
  appId: number | null,
  rolloutId: number | null,
  details: string,
) =>
  db.insertInto('audit_events').values({
    at,
    type,
    actor,
    user_id: userId,
    grant_id: grantId,
    app_id: appId,
    rollout_id: rolloutId,
    details,
  })

const preparedInsertAudit = preparedQuery(insertAudit)
