// Core ledger: Carta apps, end users, grants with their granted scopes, encrypted tokens,
// pending revocations, OAuth state, sessions and the audit trail.
// Portable across SQLite and PostgreSQL: times are epoch milliseconds in bigint columns,
// booleans are 0/1 integers, JSON is text.
import { type ColumnDefinitionBuilder, type Kysely, PostgresAdapter } from 'kysely'

// Frozen with this migration (migrations never import application code): an auto-incrementing
// integer primary key, `serial` (int4) on PostgreSQL and the rowid alias on SQLite.
function idColumn(db: Kysely<any>): ['serial' | 'integer', (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return db.getExecutor().adapter instanceof PostgresAdapter
    ? ['serial', (c) => c.primaryKey()]
    : ['integer', (c) => c.primaryKey().autoIncrement()]
}

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('oauth_apps')
    .addColumn('id', ...idColumn(db))
    .addColumn('key', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull().unique())
    .addColumn('auth_base_url', 'text', (c) => c.notNull())
    .addColumn('api_base_url', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('is_current', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retired_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('end_users')
    .addColumn('id', ...idColumn(db))
    .addColumn('carta_user_id', 'text', (c) => c.unique())
    .addColumn('local_key', 'text', (c) => c.unique())
    .addColumn('email', 'text')
    .addColumn('name', 'text')
    .addColumn('active_grant_id', 'integer')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('connected'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('end_users_email').on('end_users').column('email').execute()

  await db.schema
    .createTable('grants')
    .addColumn('id', ...idColumn(db))
    .addColumn('user_id', 'integer', (c) => c.notNull().references('end_users.id').onDelete('cascade'))
    .addColumn('app_id', 'integer', (c) => c.notNull().references('oauth_apps.id'))
    .addColumn('requested_scopes', 'text', (c) => c.notNull())
    .addColumn('granted_scopes', 'text', (c) => c.notNull())
    .addColumn('scopes_source', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_reason', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('superseded_by', 'integer')
    .execute()
  await db.schema.createIndex('grants_user').on('grants').columns(['user_id', 'id']).execute()
  await db.schema.createIndex('grants_app_status').on('grants').columns(['app_id', 'status']).execute()

  await db.schema
    .createTable('grant_scopes')
    .addColumn('grant_id', 'integer', (c) => c.notNull().references('grants.id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('grant_scopes_pk', ['grant_id', 'scope'])
    .execute()
  await db.schema.createIndex('grant_scopes_scope').on('grant_scopes').columns(['scope', 'grant_id']).execute()

  await db.schema
    .createTable('grant_tokens')
    .addColumn('grant_id', 'integer', (c) => c.primaryKey().references('grants.id').onDelete('cascade'))
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('access_token', 'text', (c) => c.notNull())
    .addColumn('refresh_token', 'text')
    .addColumn('token_type', 'text', (c) => c.notNull().defaultTo('Bearer'))
    .addColumn('access_expires_at', 'bigint')
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('refresh_lock_owner', 'text')
    .addColumn('refresh_lock_until', 'bigint')
    .addColumn('refreshed_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('token_revocations')
    .addColumn('id', ...idColumn(db))
    .addColumn('grant_id', 'integer', (c) => c.notNull().references('grants.id').onDelete('cascade'))
    .addColumn('app_id', 'integer', (c) => c.notNull().references('oauth_apps.id'))
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('token', 'text', (c) => c.notNull())
    .addColumn('token_type_hint', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('lock_until', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('done_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('token_revocations_due')
    .on('token_revocations')
    .columns(['status', 'next_attempt_at'])
    .execute()
  await db.schema.createIndex('token_revocations_grant').on('token_revocations').column('grant_id').execute()

  await db.schema
    .createTable('oauth_states')
    .addColumn('state', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'integer', (c) => c.notNull().references('oauth_apps.id'))
    .addColumn('code_verifier', 'text', (c) => c.notNull())
    .addColumn('requested_scopes', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('link_id', 'integer')
    .addColumn('expected_user_id', 'integer')
    .addColumn('return_to', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema.createIndex('oauth_states_expires').on('oauth_states').column('expires_at').execute()

  await db.schema
    .createTable('sessions')
    .addColumn('sid', 'text', (c) => c.primaryKey())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute()

  await db.schema
    .createTable('audit_events')
    .addColumn('id', ...idColumn(db))
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('grant_id', 'integer')
    .addColumn('app_id', 'integer')
    .addColumn('rollout_id', 'integer')
    .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute()
  await db.schema.createIndex('audit_events_at').on('audit_events').columns(['at', 'id']).execute()
  await db.schema.createIndex('audit_events_user').on('audit_events').columns(['user_id', 'at']).execute()
  await db.schema.createIndex('audit_events_type').on('audit_events').columns(['type', 'at']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'audit_events',
    'sessions',
    'oauth_states',
    'token_revocations',
    'grant_tokens',
    'grant_scopes',
    'grants',
    'end_users',
    'oauth_apps',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
