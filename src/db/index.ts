// Opening the database: the Kysely instance every module's queries take as their first argument.
import { Kysely, sql } from 'kysely'
import type { DatabaseConfig } from '../config.js'
import { createDialect } from './dialect.js'
import type { Database } from './schema.js'

export type Db = Kysely<Database>
export type { Database } from './schema.js'

export class DatabaseUnavailableError extends Error {}

/** Opens the configured database and checks it answers; a clear error if it does not. */
export async function openDatabase(config: DatabaseConfig, options: { poolSize?: number; searchPath?: string } = {}): Promise<Db> {
  let db: Db
  try {
    db = new Kysely<Database>({ dialect: createDialect(config, options).dialect })
    await sql`select 1`.execute(db)
  } catch (err) {
    const where = config.kind === 'postgres' ? redactUrl(config.url) : config.path
    throw new DatabaseUnavailableError(`Cannot open the ${config.kind} database at ${where}: ${(err as Error).message}`)
  }
  return db
}

/** postgres://user:secret@host/db → postgres://user:***@host/db, for log lines. */
export function redactUrl(value: string): string {
  try {
    const u = new URL(value)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}
