// The one place that knows which SQL engine is underneath. Everything else in src/ writes
// portable Kysely queries; migrations ask here for the few column shapes that differ.
import Database from 'better-sqlite3'
import { type ColumnDefinitionBuilder, type Dialect, type Kysely, PostgresAdapter, PostgresDialect, SqliteDialect, sql } from 'kysely'
import pg from 'pg'
import type { DatabaseConfig } from '../config.js'

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
    if (searchPath !== undefined && !PLAIN_SCHEMA.test(searchPath)) throw new Error(`search path "${searchPath}" is not a plain schema name`)
    const pool = new pg.Pool({
      connectionString: config.url,
      max: options.poolSize ?? config.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      application_name: 'scope-ledger',
      // A schema per deployment or per test app isolates them on one database.
      ...(searchPath ? { options: `-c search_path=${searchPath}` } : {}),
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
  return { kind: 'sqlite', dialect: new SqliteDialect({ database }) }
}

// Kysely's PostgreSQL migration lock is one advisory lock for the whole database, so every
// schema's migrations queue behind each other (dozens of test schemas, or staging next to
// production). Key it by schema instead: instances sharing a schema still migrate one at a time.
const MIGRATION_LOCK = 'scope-ledger:migrate:'

class SchemaScopedPostgresAdapter extends PostgresAdapter {
  override async acquireMigrationLock(db: Kysely<any>): Promise<void> {
    await sql`select pg_advisory_lock(hashtext(${MIGRATION_LOCK} || current_schema()))`.execute(db)
  }
  override async releaseMigrationLock(db: Kysely<any>): Promise<void> {
    await sql`select pg_advisory_unlock(hashtext(${MIGRATION_LOCK} || current_schema()))`.execute(db)
  }
}

class SchemaScopedPostgresDialect extends PostgresDialect {
  override createAdapter(): PostgresAdapter {
    return new SchemaScopedPostgresAdapter()
  }
}

export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/**
 * An auto-incrementing integer primary key: `serial` (int4, 2^31 ids: 700× the 3M-grant design
 * scale) on PostgreSQL, the rowid alias on SQLite. Foreign keys to it are `integer` on both.
 */
export function idColumn(db: Kysely<any>): ['serial' | 'integer', (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return isPostgres(db)
    ? ['serial', (c) => c.primaryKey()]
    : ['integer', (c) => c.primaryKey().autoIncrement()]
}

/** True when an error is a unique-constraint violation on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string }
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
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
export async function currentSchema(db: Kysely<any>): Promise<string | undefined> {
  if (!isPostgres(db)) return undefined
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db)
  const schema = rows[0]?.schema
  if (!schema) throw new Error('the PostgreSQL search_path names no existing schema (create it, or fix DATABASE_SEARCH_PATH)')
  return schema
}
