// One set of migrations for both engines: they apply from scratch, re-running is a no-op, and
// on PostgreSQL they build the same tables, columns, indexes and foreign keys as on SQLite
// (a new migration file that is not portable fails here first).
import { sql } from 'kysely'
import t from 'tap'
import { isPostgres } from '../../src/db/dialect.js'
import type { Db } from '../../src/db/index.js'
import { migrateToLatest, MigrationError } from '../../src/db/migrate.js'
import { type Engine, engines, openTestDb, postgresUrl } from './engines.js'

interface ColumnShape {
  type: string
  nullable: boolean
}
type Shape = Record<string, Record<string, ColumnShape>>

// Declared types as each engine reports them, mapped to one vocabulary.
const TYPE_NAMES: Record<string, string> = {
  int8: 'bigint',
  int4: 'integer',
  serial: 'integer',
  varchar: 'text',
  'varchar(255)': 'text',
}

async function shape(db: Db, schema: string | undefined): Promise<Shape> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: false })
  const out: Shape = {}
  for (const table of tables) {
    if (schema && table.schema !== schema) continue
    // SQLite reports primary-key columns as nullable (a legacy quirk); PostgreSQL never allows it.
    const pk = isPostgres(db)
      ? new Set<string>()
      : new Set(
          (
            await sql<{ name: string }>`select name from pragma_table_info(${table.name}) where pk > 0`.execute(db)
          ).rows.map((r) => r.name),
        )
    out[table.name] = Object.fromEntries(
      table.columns.map((c) => [
        c.name,
        {
          type: TYPE_NAMES[c.dataType.toLowerCase()] ?? c.dataType.toLowerCase(),
          nullable: c.isNullable && !pk.has(c.name),
        },
      ]),
    )
  }
  return out
}

/** Indexes created by migrations (not the ones engines make for primary keys / unique constraints). */
async function indexes(db: Db, schema: string | undefined): Promise<string[]> {
  if (!isPostgres(db)) {
    const { rows } = await sql<{
      name: string
    }>`select name from sqlite_master where type = 'index' and sql is not null`.execute(db)
    return rows.map((r) => r.name).sort()
  }
  const { rows } = await sql<{ name: string }>`
    select i.relname as name from pg_index x
    join pg_class i on i.oid = x.indexrelid
    join pg_namespace n on n.oid = i.relnamespace
    where n.nspname = ${schema} and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)`.execute(
    db,
  )
  return rows
    .map((r) => r.name)
    .filter((n) => !n.startsWith('kysely_'))
    .sort()
}

/** table.column → referenced table, for every foreign key. */
async function foreignKeys(db: Db, schema: string | undefined, tables: string[]): Promise<string[]> {
  if (!isPostgres(db)) {
    const out: string[] = []
    for (const table of tables) {
      const { rows } = await sql<{
        from: string
        table: string
      }>`select "from", "table" from pragma_foreign_key_list(${table})`.execute(db)
      out.push(...rows.map((r) => `${table}.${r.from} -> ${r.table}`))
    }
    return out.sort()
  }
  const { rows } = await sql<{ fk: string }>`
    select src.relname || '.' || a.attname || ' -> ' || dst.relname as fk
    from pg_constraint c
    join pg_class src on src.oid = c.conrelid
    join pg_class dst on dst.oid = c.confrelid
    join pg_namespace n on n.oid = src.relnamespace
    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
    where c.contype = 'f' and n.nspname = ${schema}`.execute(db)
  return rows.map((r) => r.fk).sort()
}

const shapes = new Map<Engine, { tables: Shape; indexes: string[]; fks: string[] }>()

for (const engine of engines()) {
  t.test(`${engine}: migrations apply from scratch and re-run as a no-op`, async (t) => {
    const { db, schema } = await openTestDb(t, engine, { migrate: false })
    const first = await migrateToLatest(db)
    t.ok(first.results && first.results.length >= 2, 'every migration file ran')
    t.ok(
      first.results?.every((r) => r.status === 'Success'),
      'all succeeded',
    )
    const again = await migrateToLatest(db)
    t.same(again.results, [], 'nothing left to apply the second time')

    const tables = await shape(db, schema)
    for (const core of [
      'oauth_apps',
      'end_users',
      'grants',
      'grant_scopes',
      'grant_tokens',
      'oauth_states',
      'sessions',
      'audit_events',
      'rollouts',
      'reauth_links',
    ]) {
      t.ok(tables[core], `${core} exists`)
    }
    // Times are epoch milliseconds in bigint columns on both engines (2^31 ms is 25 days).
    const notBigint = Object.entries(tables).flatMap(([table, cols]) =>
      Object.entries(cols)
        .filter(([name, c]) => /_at$|_until$/.test(name) && c.type !== 'bigint')
        .map(([name, c]) => `${table}.${name} is ${c.type}`),
    )
    t.same(notBigint, [], 'every *_at / *_until column is bigint')
    shapes.set(engine, {
      tables,
      indexes: await indexes(db, schema),
      fks: await foreignKeys(db, schema, Object.keys(tables)),
    })
  })
}

if (postgresUrl()) {
  t.test('postgres builds the same schema as sqlite', async (t) => {
    const lite = shapes.get('sqlite')
    const pg = shapes.get('postgres')
    if (!lite || !pg) return t.fail('both engines should have been migrated above')
    t.same(Object.keys(pg.tables).sort(), Object.keys(lite.tables).sort(), 'same tables')
    for (const table of Object.keys(lite.tables))
      t.same(pg.tables[table], lite.tables[table], `${table}: same columns, types and nullability`)
    t.same(pg.indexes, lite.indexes, 'same indexes')
    t.same(pg.fks, lite.fks, 'same foreign keys')
  })

  t.test('postgres: each schema keeps its own migration bookkeeping', async (t) => {
    // Kysely would otherwise find the first schema's kysely_migration table from the second
    // schema, skip creating its own, and fail (src/db/migrate.ts pins it to current_schema()).
    const a = await openTestDb(t, 'postgres')
    const b = await openTestDb(t, 'postgres', { migrate: false })
    const result = await migrateToLatest(b.db)
    t.ok(result.results?.length, 'the second schema ran its migrations')
    const { rows } = await sql<{
      n: number
    }>`select count(*) as n from information_schema.tables where table_schema = ${b.schema} and table_name = 'kysely_migration'`.execute(
      b.db,
    )
    t.equal(rows[0]?.n, 1, 'kysely_migration lives in the second schema too')
    const countA = await a.db
      .selectFrom('sessions')
      .select((e) => e.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    t.equal(Number(countA.n), 0, 'first schema untouched')
  })

  t.test('postgres: two instances migrating one schema at once apply each migration once', async (t) => {
    // The migration lock is keyed by schema (src/db/dialect.ts): same schema waits, others do not.
    const { db, another } = await openTestDb(t, 'postgres', { migrate: false })
    const other = await another()
    const [first, second] = await Promise.all([migrateToLatest(db), migrateToLatest(other)])
    const applied = (first.results?.length ?? 0) + (second.results?.length ?? 0)
    const files = await db
      .selectFrom('kysely_migration' as never)
      .select((e) => e.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    t.equal(applied, Number((files as { n: number }).n), 'each migration ran in exactly one of the two')
  })

  t.test('postgres: a search path naming a missing schema is a clear migration error', async (t) => {
    const { config } = await openTestDb(t, 'postgres', { migrate: false })
    if (config.kind !== 'postgres') return
    const { openDatabase } = await import('../../src/db/index.js')
    const db = await openDatabase({ ...config, searchPath: 'no_such_schema_here' })
    t.teardown(() => db.destroy())
    const err = await migrateToLatest(db).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err instanceof MigrationError, 'a MigrationError (server.ts prints it without a stack)')
    t.match((err as Error).message, /search_path names no existing schema/)
  })
} else {
  t.test(
    'postgres comparison',
    {
      skip: 'set TEST_DATABASE_URL or TEST_DATABASE_URL_PG (e.g. postgres://postgres@127.0.0.1:5432/test) to compare with PostgreSQL',
    },
    () => {},
  )
}
