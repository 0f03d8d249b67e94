// Email: campaigns per rollout, the durable outbox every message passes through, opt-outs, and
// the honest states of a reauthorization link (opened, continued to Carta, its outcome, emailed,
// revoked). Portable across SQLite and PostgreSQL like every migration.
import { type ColumnDefinitionBuilder, type Kysely, PostgresAdapter } from 'kysely'

// Frozen with this migration (migrations never import application code).
function idColumn(db: Kysely<any>): ['serial' | 'integer', (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return db.getExecutor().adapter instanceof PostgresAdapter
    ? ['serial', (c) => c.primaryKey()]
    : ['integer', (c) => c.primaryKey().autoIncrement()]
}

const LINK_COLUMNS = ['emailed_at', 'opened_at', 'continued_at', 'outcome', 'outcome_at', 'revoked_at', 'revoked_by']

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mail_campaigns')
    .addColumn('id', ...idColumn(db))
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    // everyone | filter | users; the filter as JSON, the ticked user ids as JSON.
    .addColumn('selection', 'text', (c) => c.notNull())
    .addColumn('filter', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('user_ids', 'text')
    // active | paused
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    // Days after the first email, space separated ("3 7"); empty: no reminders.
    .addColumn('reminder_days', 'text', (c) => c.notNull().defaultTo(''))
    // Expansion of the selection into outbox rows, in chunks under a lease.
    .addColumn('expand_status', 'text', (c) => c.notNull().defaultTo('expanding'))
    .addColumn('expand_cursor', 'text')
    .addColumn('expand_lock_owner', 'text')
    .addColumn('expand_lock_until', 'bigint')
    .addColumn('queued', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('skipped_no_email', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('skipped_opted_out', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('skipped_covered', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('skipped_already', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('paused_at', 'bigint')
    .execute()
  await db.schema.createIndex('mail_campaigns_rollout').on('mail_campaigns').columns(['rollout_id', 'id']).execute()

  await db.schema
    .createTable('mail_outbox')
    .addColumn('id', ...idColumn(db))
    // link | report
    .addColumn('kind', 'text', (c) => c.notNull())
    // "link:<rollout>:<user>:<step>": one step of one rollout reaches one person once.
    .addColumn('dedupe_key', 'text', (c) => c.unique())
    .addColumn('campaign_id', 'integer', (c) => c.references('mail_campaigns.id').onDelete('cascade'))
    .addColumn('rollout_id', 'integer', (c) => c.references('rollouts.id').onDelete('cascade'))
    .addColumn('user_id', 'integer', (c) => c.references('end_users.id').onDelete('cascade'))
    .addColumn('step', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('to_address', 'text', (c) => c.notNull())
    // What a report message carries (JSON); link messages are rendered when sent.
    .addColumn('payload', 'text')
    // queued | sending | sent | failed | skipped
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
    .addColumn('reason', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('lock_owner', 'text')
    .addColumn('lock_until', 'bigint')
    .addColumn('link_id', 'integer')
    .addColumn('message_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('sent_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('mail_outbox_due').on('mail_outbox').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('mail_outbox_member').on('mail_outbox').columns(['rollout_id', 'user_id']).execute()
  await db.schema
    .createIndex('mail_outbox_campaign')
    .on('mail_outbox')
    .columns(['campaign_id', 'step', 'status'])
    .execute()

  await db.schema
    .createTable('mail_opt_outs')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('end_users.id').onDelete('cascade'))
    .addColumn('at', 'bigint', (c) => c.notNull())
    // one-click (RFC 8058 POST) | page (the button on the opt-out page)
    .addColumn('source', 'text', (c) => c.notNull())
    .execute()

  for (const name of LINK_COLUMNS) {
    const type = name === 'outcome' || name === 'revoked_by' ? 'text' : 'bigint'
    await db.schema.alterTable('reauth_links').addColumn(name, type).execute()
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const name of [...LINK_COLUMNS].reverse()) {
    await db.schema.alterTable('reauth_links').dropColumn(name).execute()
  }
  for (const table of ['mail_opt_outs', 'mail_outbox', 'mail_campaigns']) await db.schema.dropTable(table).execute()
}
