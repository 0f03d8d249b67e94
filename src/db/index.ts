// Opening the database: the Kysely instance every module's queries take as their first argument.
import { Kysely, sql } from 'kysely'
import type { DatabaseConfig } from '../config.js'
import { createDialect, type DialectOptions } from './dialect.js'
import type { Database } from './schema.js'

export type Db = Kysely<Database>

/** The largest id an `integer` column holds on PostgreSQL (int4); every id the app accepts is in 1..MAX_ID. */
export const MAX_ID = 2_147_483_647
export type { Database } from './schema.js'

export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError'
}

/** Opens the configured database and checks it answers; a clear error if it does not. */
export async function openDatabase(config: DatabaseConfig, options: DialectOptions = {}): Promise<Db> {
  let db: Db | undefined
  try {
    db = new Kysely<Database>({ dialect: createDialect(config, options).dialect })
    await sql`select 1`.execute(db)
  } catch (err) {
    // Release the pool (or file) so a failed start does not hang on open handles.
    await db?.destroy().catch(() => {})
    const where = config.kind === 'postgres' ? redactUrl(config.url) : config.path
    throw new DatabaseUnavailableError(`Cannot open the ${config.kind} database at ${where}: ${describe(err)}`)
  }
  return db
}

/** pg reports ECONNREFUSED as an AggregateError with an empty message; name the cause. */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> }
  const message =
    e?.message ||
    e?.errors
      ?.map((x) => x.message)
      .filter(Boolean)
      .join('; ') ||
    e?.code ||
    String(err)
  return e?.code && !message.includes(e.code) ? `${message} (${e.code})` : message
}

/** postgres://user:secret@host/db → postgres://user:***@host/db, for log lines. */
export function redactUrl(value: string): string {
  try {
    const u = new URL(value)
    if (u.password) u.password = '***'
    // A password may also ride in the query string (?password=…).
    if (u.searchParams.has('password')) u.searchParams.set('password', '***')
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}
