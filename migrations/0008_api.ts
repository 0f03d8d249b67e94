// The integrator's API and webhooks: API keys (hashed), one-time connect sessions, the integrator's
// own user id on end users, webhook endpoints, the durable outbox of events and their deliveries.
// Portable across SQLite and PostgreSQL, as 0001: epoch milliseconds in bigint, 0/1 integers, JSON text.
import { type ColumnDefinitionBuilder, type Kysely, PostgresAdapter } from 'kysely'

// Frozen with this migration (migrations never import application code).
function idColumn(db: Kysely<any>): ['serial' | 'integer', (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return db.getExecutor().adapter instanceof PostgresAdapter
    ? ['serial', (c) => c.primaryKey()]
    : ['integer', (c) => c.primaryKey().autoIncrement()]
}

export async function up(db: Kysely<any>): Promise<void> {
  // The integrator's id for the person, set by a connect session; unique when present.
  await db.schema.alterTable('end_users').addColumn('external_user_id', 'text').execute()
  await db.schema.createIndex('end_users_external').on('end_users').column('external_user_id').unique().execute()

  await db.schema
    .createTable('api_keys')
    .addColumn('id', ...idColumn(db))
    .addColumn('name', 'text', (c) => c.notNull())
    // The first characters of the key, shown so an operator can tell keys apart; never enough to use.
    .addColumn('prefix', 'text', (c) => c.notNull())
    // SHA-256 of the key (hex): the key is 256 random bits, so a slow hash adds nothing.
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('permissions', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute()

  await db.schema
    .createTable('connect_sessions')
    .addColumn('id', ...idColumn(db))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('external_user_id', 'text', (c) => c.notNull())
    .addColumn('return_to', 'text', (c) => c.notNull())
    .addColumn('api_key_id', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('user_id', 'integer')
    .execute()
  // The OAuth state of a flow started from a connect session (the callback ties the identity).
  await db.schema.alterTable('oauth_states').addColumn('connect_session_id', 'integer').execute()

  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', ...idColumn(db))
    .addColumn('url', 'text', (c) => c.notNull())
    // Space-separated event types; empty = every type.
    .addColumn('events', 'text', (c) => c.notNull())
    // The whsec_ signing secret, sealed with the token cipher (key id beside it).
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('disabled_reason', 'text')
    .addColumn('failing_since', 'bigint')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('webhook_events')
    .addColumn('id', ...idColumn(db))
    // The Standard Webhooks message id (webhook-id), the same on every attempt and redelivery.
    .addColumn('message_id', 'text', (c) => c.notNull().unique())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', ...idColumn(db))
    .addColumn('endpoint_id', 'integer', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('event_id', 'integer', (c) => c.notNull().references('webhook_events.id').onDelete('cascade'))
    // Ordering key: one user's events reach one endpoint in order (0 when the event has no user).
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('lock_owner', 'text')
    .addColumn('lock_until', 'bigint')
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('last_attempt_at', 'bigint')
    .addColumn('delivered_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('webhook_deliveries_due')
    .on('webhook_deliveries')
    .columns(['status', 'next_attempt_at'])
    .execute()
  await db.schema
    .createIndex('webhook_deliveries_order')
    .on('webhook_deliveries')
    .columns(['endpoint_id', 'user_id', 'status', 'id'])
    .execute()
  await db.schema.createIndex('webhook_deliveries_event').on('webhook_deliveries').column('event_id').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['webhook_deliveries', 'webhook_events', 'webhook_endpoints', 'connect_sessions', 'api_keys']) {
    await db.schema.dropTable(table).execute()
  }
  await db.schema.alterTable('oauth_states').dropColumn('connect_session_id').execute()
  await db.schema.dropIndex('end_users_external').execute()
  await db.schema.alterTable('end_users').dropColumn('external_user_id').execute()
}
