// Coverage reports: one report_runs row per run (scheduled slot or manual), one
// coverage_snapshots row per (run, active rollout). The UNIQUE slot_key is what makes a schedule
// slot run exactly once across app instances sharing the database: whoever inserts it runs.
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
    .createTable('report_runs')
    .addColumn('id', ...idColumn(db))
    // Scheduled slot time as ISO-8601 UTC, or manual:<uuid>.
    .addColumn('slot_key', 'text', (c) => c.notNull().unique())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    // JSON {"json": name, "csv": name, "html": name}: file names inside the reports directory.
    .addColumn('files', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('delivery_status', 'text')
    .addColumn('delivery_error', 'text')
    .addColumn('delivery_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema.createIndex('report_runs_started').on('report_runs').columns(['started_at', 'id']).execute()

  await db.schema
    .createTable('coverage_snapshots')
    .addColumn('id', ...idColumn(db))
    .addColumn('run_id', 'integer', (c) => c.notNull().references('report_runs.id').onDelete('cascade'))
    .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('rollout_name', 'text', (c) => c.notNull())
    .addColumn('required_scopes', 'text', (c) => c.notNull())
    .addColumn('taken_at', 'bigint', (c) => c.notNull())
    .addColumn('members', 'bigint', (c) => c.notNull())
    .addColumn('active_users', 'bigint', (c) => c.notNull())
    .addColumn('covered', 'bigint', (c) => c.notNull())
    .addColumn('lacking', 'bigint', (c) => c.notNull())
    .addColumn('reconnect', 'bigint', (c) => c.notNull())
    .addColumn('links_issued', 'bigint', (c) => c.notNull())
    .addColumn('links_used', 'bigint', (c) => c.notNull())
    .addColumn('links_issued_24h', 'bigint', (c) => c.notNull())
    .addColumn('links_used_24h', 'bigint', (c) => c.notNull())
    // JSON {"lackingByScope": {...}, "usersByApp": [...]}
    .addColumn('detail', 'text', (c) => c.notNull())
    .addUniqueConstraint('coverage_snapshots_run_rollout', ['run_id', 'rollout_id'])
    .execute()
  await db.schema
    .createIndex('coverage_snapshots_trend')
    .on('coverage_snapshots')
    .columns(['rollout_id', 'taken_at'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('coverage_snapshots').execute()
  await db.schema.dropTable('report_runs').execute()
}
