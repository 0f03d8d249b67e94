// Uploaded imports and a correct shared request budget.
// - import_rejects: the rejected lines of an import uploaded from the dashboard (line number, reason,
//   the identity when the line had one; never a token), keyed by the run's rejects_file value, so
//   every instance can serve the download.
// - carta_budgets: two GCRA states (the generic cell rate algorithm of ITU-T I.371 in its
//   virtual-scheduling form: the theoretical arrival time of the next request) for the per-second burst and the per-minute rate. The
//   fixed windows of 0007 let twice the rate through across a window boundary; their columns stay,
//   unused.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('import_rejects')
    .addColumn('rejects_key', 'text', (c) => c.notNull())
    .addColumn('line', 'integer', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('carta_user_id', 'text')
    .addColumn('client_id', 'text')
    .addPrimaryKeyConstraint('import_rejects_pk', ['rejects_key', 'line'])
    .execute()
  await db.schema
    .alterTable('carta_budgets')
    .addColumn('second_tat', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema
    .alterTable('carta_budgets')
    .addColumn('minute_tat', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('carta_budgets').dropColumn('minute_tat').execute()
  await db.schema.alterTable('carta_budgets').dropColumn('second_tat').execute()
  await db.schema.dropTable('import_rejects').execute()
}
