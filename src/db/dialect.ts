// The one place in src/ that knows which SQL engine is underneath. Everything else writes
// portable Kysely queries (migrations, frozen in time, carry their own copy of what they need).
import Database from 'better-sqlite3'
import {
  type ColumnMetadata,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  type Dialect,
  type Kysely,
  PostgresAdapter,
  PostgresDialect,
  type SchemaMetadata,
  SqliteDialect,
  type TableMetadata,
  sql,
} from 'kysely'
import pg from 'pg'
import type { DatabaseConfig } from '../config.js'
import type { Database as Tables } from './schema.js'

// PostgreSQL returns int8 (bigint, and every count(*)) as a string; our bigints are epoch
// milliseconds and counts, far below 2^53, so read them as numbers like SQLite does.
pg.types.setTypeParser(20, (value: string) => Number(value))
// numeric (sum()/avg() results) likewise; coverage ratios need no arbitrary precision.
pg.types.setTypeParser(1700, (value: string) => Number(value))

export interface OpenedDialect {
  dialect: Dialect
  kind: DatabaseConfig['kind']
}

export interface DialectOptions {
  /** Overrides DATABASE_POOL_SIZE (PostgreSQL only). */
  poolSize?: number
  /** Overrides DATABASE_SEARCH_PATH (PostgreSQL only): the schema every unqualified name lives in. */
  searchPath?: string
}

/** Only plain lower-case identifiers reach the connection options (they are not quoted there). */
const PLAIN_SCHEMA = /^[a-z_][a-z0-9_]*$/

export function createDialect(config: DatabaseConfig, options: DialectOptions = {}): OpenedDialect {
  if (config.kind === 'postgres') {
    const searchPath = options.searchPath ?? config.searchPath
    if (searchPath !== undefined && !PLAIN_SCHEMA.test(searchPath))
      throw new Error(`search path "${searchPath}" is not a plain schema name`)
    const pool = new pg.Pool({
      connectionString: config.url,
      max: options.poolSize ?? config.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      application_name: 'scope-ledger',
      // A schema per deployment or per test app isolates them on one database. JIT compilation
      // costs ~100 ms per statement and pays off only for long analytic queries; ours are short.
      options: ['-c jit=off', ...(searchPath ? [`-c search_path=${searchPath}`] : [])].join(' '),
    })
    // An idle pooled connection that dies (server restart, network cut) emits 'error' on the pool;
    // unhandled it would crash the process. The pool drops that client and opens a new one on
    // the next query, so nothing else is needed here.
    pool.on('error', () => {})
    return { kind: 'postgres', dialect: new SchemaScopedPostgresDialect({ pool }) }
  }
  const database = new Database(config.path)
  database.pragma('journal_mode = WAL') // readers never block the writer
  database.pragma('foreign_keys = ON')
  database.pragma('busy_timeout = 5000') // a second process waits for the write lock instead of failing
  database.pragma('synchronous = NORMAL') // safe with WAL; a crash loses at most the last commit
  // Reads through a memory map instead of a read() call per page, and a larger page cache (64 MiB
  // instead of 2): point lookups spread over a million users otherwise pay syscalls per request.
  database.pragma('mmap_size = 1073741824')
  database.pragma('cache_size = -65536')
  return { kind: 'sqlite', dialect: new SqliteDialect({ database: new StatementCache(database) }) }
}

/**
 * Kysely's SQLite driver prepares every query anew; compiling the SQL costs more than running a
 * short indexed read. Keep the prepared statements of the most recent distinct SQL texts (a few
 * hundred: the app's queries are a fixed set; IN lists of varying length make a few more). A
 * statement still iterating (a streamed select) is busy and cannot be reused: prepare another.
 */
class StatementCache {
  readonly #db: Database.Database
  readonly #statements = new Map<string, Database.Statement>()

  constructor(
    db: Database.Database,
    private readonly size = 500,
  ) {
    this.#db = db
  }

  prepare(text: string): Database.Statement {
    const cached = this.#statements.get(text)
    if (cached && !cached.busy) {
      // Most recently used last, so the oldest entry is the first the map iterates.
      this.#statements.delete(text)
      this.#statements.set(text, cached)
      return cached
    }
    const statement = this.#db.prepare(text)
    if (!cached) {
      this.#statements.set(text, statement)
      if (this.#statements.size > this.size) this.#statements.delete(this.#statements.keys().next().value!)
    }
    return statement
  }

  close(): void {
    this.#statements.clear()
    this.#db.close()
  }
}

// Kysely's PostgreSQL migration lock is one advisory lock for the whole database, so every
// schema's migrations queue behind each other (dozens of test schemas, or staging next to
// production). Key it by schema instead: instances sharing a schema still migrate one at a time.
const MIGRATION_LOCK = 'scope-ledger:migrate:'

class SchemaScopedPostgresAdapter extends PostgresAdapter {
  override async acquireMigrationLock(db: Kysely<unknown>): Promise<void> {
    await sql`select pg_advisory_lock(hashtext(${MIGRATION_LOCK} || current_schema()))`.execute(db)
  }
  override async releaseMigrationLock(db: Kysely<unknown>): Promise<void> {
    await sql`select pg_advisory_unlock(hashtext(${MIGRATION_LOCK} || current_schema()))`.execute(db)
  }
}

// Kysely's introspector (the migrator uses it to see whether its bookkeeping table exists) reads
// the columns of every table in EVERY schema, resolving names as it goes; when another schema on
// the same database is dropped meanwhile (a test app tearing down, a staging copy removed), that
// query fails ("relation … does not exist"). Look only at our own schema.
class SchemaScopedPostgresIntrospector implements DatabaseIntrospector {
  constructor(private readonly db: Kysely<unknown>) {}

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace`.execute(this.db)
    return rows
  }

  async getTables(options: DatabaseMetadataOptions = { withInternalKyselyTables: false }): Promise<TableMetadata[]> {
    const { rows } = await sql<{
      column: string
      not_null: boolean
      has_default: boolean
      table: string
      table_type: string
      schema: string
      type: string
      type_schema: string
      auto_incrementing: string | null
    }>`
      select a.attname as column, a.attnotnull as not_null, a.atthasdef as has_default, c.relname as table,
             c.relkind as table_type, ns.nspname as schema, typ.typname as type, dtns.nspname as type_schema,
             pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname) as auto_incrementing
      from pg_catalog.pg_attribute a
      join pg_catalog.pg_class c on a.attrelid = c.oid
      join pg_catalog.pg_namespace ns on c.relnamespace = ns.oid
      join pg_catalog.pg_type typ on a.atttypid = typ.oid
      join pg_catalog.pg_namespace dtns on typ.typnamespace = dtns.oid
      where ns.nspname = current_schema() and c.relkind in ('r', 'v', 'p') and a.attnum >= 0 and not a.attisdropped
      order by c.relname, a.attnum`.execute(this.db)
    const tables = new Map<string, TableMetadata & { columns: ColumnMetadata[] }>()
    for (const r of rows) {
      if (!options.withInternalKyselyTables && (r.table === 'kysely_migration' || r.table === 'kysely_migration_lock'))
        continue
      let table = tables.get(r.table)
      if (!table) {
        table = { name: r.table, schema: r.schema, isView: r.table_type === 'v', columns: [] }
        tables.set(r.table, table)
      }
      table.columns.push({
        name: r.column,
        dataType: r.type,
        dataTypeSchema: r.type_schema,
        isNullable: !r.not_null,
        hasDefaultValue: r.has_default,
        isAutoIncrementing: r.auto_incrementing !== null,
      })
    }
    return [...tables.values()]
  }

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) }
  }
}

class SchemaScopedPostgresDialect extends PostgresDialect {
  override createAdapter(): PostgresAdapter {
    return new SchemaScopedPostgresAdapter()
  }
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SchemaScopedPostgresIntrospector(db)
  }
}

/**
 * After a bulk change (a rollout build writes a row per end user), refresh the planner's
 * statistics on PostgreSQL so the next queries do not plan from stale or empty-table estimates
 * (autovacuum may be slow or off). SQLite's planner needs no statistics for these indexed paths.
 */
export async function refreshPlannerStatistics<DB>(db: Kysely<DB>, tables: string[]): Promise<void> {
  if (!isPostgres(db)) return
  for (const table of tables) {
    if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`not a plain table name: ${table}`)
    await sql.raw(`analyze ${table}`).execute(db)
  }
}

/**
 * For a process that writes in bulk (the import command): on SQLite a 32 MiB page cache for this
 * connection (the default 2 MiB makes every insert into a 1M-row index read pages back from the
 * OS), and no memory map: pages a long import touches through the map count in its resident
 * memory, and its writes go through the WAL anyway. Its commits checkpoint the WAL into the
 * database file every 64 MiB instead of every 4 MiB: each checkpoint rewrites the pages it
 * touched since the last one, and a long import touches the same index pages again and again
 * (seeded 1M-user ledger: 125 s → 111 s; the rollout page meanwhile was unchanged, p95 28 → 26 ms).
 * Durability is untouched: WAL with synchronous = NORMAL as everywhere (an interrupted process
 * loses nothing committed). PostgreSQL needs nothing here.
 */
export async function tuneForBulkWrites<DB>(db: Kysely<DB>): Promise<void> {
  if (isPostgres(db)) return
  await sql`pragma cache_size = -32768`.execute(db)
  await sql`pragma mmap_size = 0`.execute(db)
  await sql`pragma wal_autocheckpoint = 16384`.execute(db)
}

/**
 * Locks the end users' rows for the rest of the transaction, in id order (src/README.md, "Lock
 * order"). PostgreSQL: SELECT … FOR UPDATE, which writes no new row versions (a no-op UPDATE would
 * write one per user). SQLite has one writer at a time: a no-op UPDATE makes the transaction that
 * writer now, so it waits for the lock here (busy_timeout) instead of failing later.
 */
export async function lockUserRows(db: Kysely<Tables>, userIds: number[]): Promise<void> {
  const ids = [...userIds].sort((a, b) => a - b)
  for (let i = 0; i < ids.length; i += 10_000) {
    const chunk = ids.slice(i, i + 10_000)
    if (isPostgres(db))
      await db.selectFrom('end_users').select('id').where('id', 'in', chunk).orderBy('id').forUpdate().execute()
    else
      await db
        .updateTable('end_users')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('id', 'in', chunk)
        .execute()
  }
}

export function isPostgres<DB>(db: Kysely<DB>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** True when an error is a unique-constraint violation on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string }
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
}

/**
 * True when a transaction lost a race it may simply run again: a deadlock or serialization failure
 * (PostgreSQL 40P01/40001), a unique violation from a concurrent insert of the same key, or
 * SQLite's busy writer lock.
 */
export function isRetryableConflict(err: unknown): boolean {
  const e = err as { code?: string }
  return (
    e?.code === '40P01' ||
    e?.code === '40001' ||
    e?.code === 'SQLITE_BUSY' ||
    // A read-then-write transaction whose snapshot another writer outdated (WAL mode).
    e?.code === 'SQLITE_BUSY_SNAPSHOT' ||
    isUniqueViolation(err)
  )
}

/** True when an error is a foreign-key violation on either engine. */
export function isForeignKeyViolation(err: unknown): boolean {
  const e = err as { code?: string }
  return e?.code === '23503' || e?.code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
}

/**
 * The schema unqualified table names resolve to on PostgreSQL (DATABASE_SEARCH_PATH or the
 * server's default, usually `public`); undefined on SQLite. The migrator pins its bookkeeping
 * tables to it, so several schemas on one database never see each other's migrations.
 */
export async function currentSchema<DB>(db: Kysely<DB>): Promise<string | undefined> {
  if (!isPostgres(db)) return undefined
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db)
  const schema = rows[0]?.schema
  if (!schema)
    throw new Error('the PostgreSQL search_path names no existing schema (create it, or fix DATABASE_SEARCH_PATH)')
  return schema
}
