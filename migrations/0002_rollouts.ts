// Operators, rollouts and reauthorization links.
// Scale (1M users, 3M grants): a rollout keeps one membership row per end user with the
// result of comparing the user's active grant to the rollout's required scopes, maintained
// when the user's grant changes. The lacking list is then a keyset walk over an index, and
// summary counts come from rollout_counts, kept in step in the same transactions.
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
    .createTable('operators')
    .addColumn('id', ...idColumn(db))
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_sign_in_at', 'bigint')
    .execute()

  await db.schema
    .createTable('rollouts')
    .addColumn('id', ...idColumn(db))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('app_id', 'integer', (c) => c.notNull().references('oauth_apps.id'))
    .addColumn('required_scopes', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('archived_at', 'bigint')
    .execute()

  // One row per (rollout, end user). state: covered | lacking | reconnect.
  await db.schema
    .createTable('rollout_members')
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('user_id', 'integer', (c) => c.notNull().references('end_users.id').onDelete('cascade'))
    .addColumn('app_id', 'integer')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('needs_action', 'integer', (c) => c.notNull())
    .addColumn('missing_scopes', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('authorized_at', 'bigint')
    .addPrimaryKeyConstraint('rollout_members_pk', ['rollout_id', 'user_id'])
    .execute()
  await db.schema
    .createIndex('rollout_members_list')
    .on('rollout_members')
    .columns(['rollout_id', 'needs_action', 'user_id'])
    .execute()
  await db.schema
    .createIndex('rollout_members_by_app')
    .on('rollout_members')
    .columns(['rollout_id', 'needs_action', 'app_id', 'user_id'])
    .execute()
  await db.schema
    .createIndex('rollout_members_by_time')
    .on('rollout_members')
    .columns(['rollout_id', 'needs_action', 'authorized_at', 'user_id'])
    .execute()

  // Only the missing (rollout, scope, user) triples: the "filter by missing scope" list.
  await db.schema
    .createTable('rollout_member_missing')
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rollout_member_missing_pk', ['rollout_id', 'scope', 'user_id'])
    .execute()

  // Summary counters per rollout: bucket is members | covered | lacking | reconnect |
  // missing:<scope> | app:<app id>.
  await db.schema
    .createTable('rollout_counts')
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('bucket', 'text', (c) => c.notNull())
    .addColumn('count', 'bigint', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('rollout_counts_pk', ['rollout_id', 'bucket'])
    .execute()

  await db.schema
    .createTable('reauth_links')
    .addColumn('id', ...idColumn(db))
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('user_id', 'integer', (c) => c.notNull().references('end_users.id').onDelete('cascade'))
    .addColumn('nonce', 'text', (c) => c.notNull().unique())
    .addColumn('issued_by', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('used_grant_id', 'integer')
    .execute()
  await db.schema
    .createIndex('reauth_links_member')
    .on('reauth_links')
    .columns(['rollout_id', 'user_id', 'id'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'reauth_links',
    'rollout_counts',
    'rollout_member_missing',
    'rollout_members',
    'rollouts',
    'operators',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
