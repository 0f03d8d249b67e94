// Importing grants an integrator already holds: one row per import run (who, when, which file, the
// exact counters, moved in the same transaction as the rows they count), and on each imported grant
// the run it came from and a fingerprint of its input row, so importing the same row again is
// recognised and changes nothing.
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
    .createTable('import_runs')
    .addColumn('id', ...idColumn(db))
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('file_name', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    // running | done | failed (a run left 'running' by a killed process is shown as interrupted)
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('superseded', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('unchanged', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('rejected', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('rejects_file', 'text')
    .addColumn('error', 'text')
    .execute()
  await db.schema.createIndex('import_runs_started').on('import_runs').columns(['started_at', 'id']).execute()

  // One shared request budget per Carta client id, for every instance (fixed one-second and
  // one-minute windows, moved by compare-and-set updates), and how long Carta asked us to wait.
  await db.schema
    .createTable('carta_budgets')
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('second_start', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('second_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('minute_start', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('minute_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('blocked_until', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()

  // Scope discovery per grant: done with its evidence, or to retry later; a lease keeps two
  // instances off the same grant. The queue itself is the active grants whose source is unknown.
  await db.schema
    .createTable('scope_discoveries')
    .addColumn('grant_id', 'integer', (c) => c.primaryKey().references('grants.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('lock_owner', 'text')
    .addColumn('lock_until', 'bigint')
    .addColumn('evidence', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()
  // A single row: whether an operator paused discovery.
  await db.schema
    .createTable('discovery_settings')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_by', 'text')
    .addColumn('updated_at', 'bigint')
    .execute()
  await db.schema.createIndex('grants_source_status').on('grants').columns(['scopes_source', 'status', 'id']).execute()

  // import_run_id: the run that recorded the grant; import_fingerprint: SHA-256 of its input row.
  await db.schema.alterTable('grants').addColumn('import_run_id', 'integer').execute()
  await db.schema.alterTable('grants').addColumn('import_fingerprint', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('grants').dropColumn('import_fingerprint').execute()
  await db.schema.alterTable('grants').dropColumn('import_run_id').execute()
  await db.schema.dropIndex('grants_source_status').execute()
  for (const table of ['discovery_settings', 'scope_discoveries', 'carta_budgets', 'import_runs'])
    await db.schema.dropTable(table).execute()
}
