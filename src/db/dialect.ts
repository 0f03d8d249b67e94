// The one place that knows which SQL engine is underneath. Everything else in src/ writes
// portable Kysely queries; migrations ask here for the few column shapes that differ.
import Database from 'better-sqlite3'
import { type ColumnDefinitionBuilder, type Dialect, type Kysely, PostgresAdapter, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import type { DatabaseConfig } from '../config.js'

// PostgreSQL returns int8 (bigint, and every count(*)) as a string; our bigints are epoch
// milliseconds and counts, far below 2^53, so read them as numbers like SQLite does.
pg.types.setTypeParser(20, (value: string) => Number(value))

export interface OpenedDialect {
  dialect: Dialect
  /** Releases the engine's own handles (pool or file) after Kysely is destroyed. */
  kind: DatabaseConfig['kind']
}

export function createDialect(config: DatabaseConfig, options: { poolSize?: number; searchPath?: string } = {}): OpenedDialect {
  if (config.kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: config.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      // A per-test schema (see test/helpers) isolates concurrent test files on one database.
      ...((options.searchPath ?? config.searchPath) ? { options: `-c search_path=${options.searchPath ?? config.searchPath}` } : {}),
    })
    return { kind: 'postgres', dialect: new PostgresDialect({ pool }) }
  }
  const database = new Database(config.path)
  database.pragma('journal_mode = WAL') // readers never block the writer
  database.pragma('foreign_keys = ON')
  database.pragma('busy_timeout = 5000') // a second process waits for the write lock instead of failing
  database.pragma('synchronous = NORMAL') // safe with WAL; a crash loses at most the last commit
  return { kind: 'sqlite', dialect: new SqliteDialect({ database }) }
}

export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** An auto-incrementing integer primary key: `serial` on PostgreSQL, rowid alias on SQLite. */
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
