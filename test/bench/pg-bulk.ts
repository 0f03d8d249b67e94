// PostgreSQL-only bulk insert for the bench seeder (the one engine-specific place in test/bench/).
// A multi-row VALUES insert binds one parameter per cell: 20,000 grants × 11 columns would need
// 220,000 parameters (PostgreSQL allows 65,535 per statement) and pg spends most of its time
// binding them. INSERT … SELECT FROM unnest($1::int[], $2::text[], …) binds ONE array per
// column, so a whole batch is one statement with a handful of parameters; the rows are the same
// ones the portable path inserts on SQLite, so both engines are benchmarked on identical data.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../../src/db/schema.js'

/** Column name → PostgreSQL element type of its array parameter. */
export type PgColumns = Record<string, 'integer' | 'bigint' | 'text'>

export async function insertUnnest(
  db: Kysely<Database>,
  table: string,
  columns: PgColumns,
  rows: Array<Record<string, unknown>>,
): Promise<void> {
  if (rows.length === 0) return
  const names = Object.keys(columns)
  const arrays = names.map((name) => sql`${rows.map((r) => r[name] ?? null)}::${sql.raw(columns[name]!)}[]`)
  await sql`insert into ${sql.table(table)} (${sql.join(names.map((n) => sql.ref(n)))}) select * from unnest(${sql.join(arrays)})`.execute(
    db,
  )
}
