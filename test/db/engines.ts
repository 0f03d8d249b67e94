// The db-layer tests run on every engine available: SQLite always, PostgreSQL when
// TEST_DATABASE_URL (the whole suite on PostgreSQL) or TEST_DATABASE_URL_PG (only the
// PostgreSQL-specific tests) names a server. Each opened database is a fresh file or schema.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseConfig } from '../../src/config.js'
import { type Db, openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createTestSchema } from '../helpers/database.js'

export type Engine = 'sqlite' | 'postgres'

export function postgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL?.trim() || process.env.TEST_DATABASE_URL_PG?.trim() || undefined
}

export function engines(): Engine[] {
  return postgresUrl() ? ['sqlite', 'postgres'] : ['sqlite']
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface OpenedTestDb {
  db: Db
  config: DatabaseConfig
  /** Opens another independent handle (own pool / own SQLite connection) on the same database. */
  another(poolSize?: number): Promise<Db>
  schema?: string
}

/** A fresh, empty (or migrated) database on the engine; everything is closed and dropped at teardown. */
export async function openTestDb(
  t: Teardown,
  engine: Engine,
  options: { migrate?: boolean; poolSize?: number } = {},
): Promise<OpenedTestDb> {
  const handles: Db[] = []
  let config: DatabaseConfig
  let schema: string | undefined
  let cleanup: () => Promise<void>
  if (engine === 'postgres') {
    const url = postgresUrl()
    if (!url) throw new Error('no PostgreSQL URL')
    const created = await createTestSchema(url)
    schema = created.schema
    config = { kind: 'postgres', url, searchPath: created.schema, poolSize: options.poolSize ?? 4 }
    cleanup = created.drop
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'scope-ledger-db-'))
    config = { kind: 'sqlite', path: join(dir, 'test.db') }
    cleanup = async () => rmSync(dir, { recursive: true, force: true })
  }
  // Teardowns run in order: close every handle before the schema is dropped.
  t.teardown(async () => {
    for (const h of handles) await h.destroy().catch(() => {})
    await cleanup()
  })
  const open = async (poolSize?: number) => {
    const db = await openDatabase(config, poolSize ? { poolSize } : {})
    handles.push(db)
    return db
  }
  const db = await open()
  if (options.migrate !== false) await migrateToLatest(db)
  return { db, config, another: open, ...(schema ? { schema } : {}) }
}
