// Which database a test app gets: a fresh SQLite file by default; a fresh PostgreSQL schema
// when TEST_DATABASE_URL is set (see README, "Running the tests on PostgreSQL"). Many test files
// run at once on one PostgreSQL database, so each test app gets its own schema, reached through
// DATABASE_SEARCH_PATH exactly as a deployment would, and dropped at teardown.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'

export interface TestDatabase {
  kind: 'sqlite' | 'postgres'
  /** Environment for loadConfig / a spawned server: DATABASE_PATH or DATABASE_URL + DATABASE_SEARCH_PATH. */
  env: Record<string, string>
  options: { searchPath?: string; poolSize?: number }
  /** The schema name on PostgreSQL. */
  schema?: string
  drop(): Promise<void>
}

/** The PostgreSQL URL the suite runs against, or undefined for SQLite. */
export function testPostgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL?.trim() || undefined
}

// Schema names: t_<base36 ms>_<random>. The time lets a later run drop schemas a crashed run
// left behind; the random part keeps concurrent test files apart.
const PREFIX = 't_'
const STALE_AFTER_MS = 6 * 60 * 60 * 1000
let staleSwept = false

export function newSchemaName(now = Date.now()): string {
  return `${PREFIX}${now.toString(36)}_${randomBytes(5).toString('hex')}`
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Drops test schemas older than STALE_AFTER_MS (from killed runs); once per process. */
async function sweepStaleSchemas(client: pg.Client): Promise<void> {
  if (staleSwept) return
  staleSwept = true
  const { rows } = await client.query<{ nspname: string }>(
    `select nspname from pg_namespace where nspname ~ '^t_[0-9a-z]+_[0-9a-f]{10}$'`,
  )
  for (const { nspname } of rows) {
    const born = parseInt(nspname.slice(PREFIX.length).split('_')[0]!, 36)
    if (Number.isFinite(born) && Date.now() - born > STALE_AFTER_MS) {
      await client.query(`drop schema if exists ${nspname} cascade`).catch(() => {})
    }
  }
}

/** Creates an empty schema on the test PostgreSQL database; drop() removes it and all it holds. */
export async function createTestSchema(url: string): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = newSchemaName()
  await withClient(url, async (c) => {
    await sweepStaleSchemas(c)
    await c.query(`create schema ${schema}`)
  })
  let dropped = false
  return {
    schema,
    drop: async () => {
      if (dropped) return
      dropped = true
      await withClient(url, (c) => c.query(`drop schema if exists ${schema} cascade`))
    },
  }
}

export async function testDatabase(dataDir: string): Promise<TestDatabase> {
  const url = testPostgresUrl()
  if (!url)
    return { kind: 'sqlite', env: { DATABASE_PATH: join(dataDir, 'test.db') }, options: {}, drop: async () => {} }
  const { schema, drop } = await createTestSchema(url)
  return {
    kind: 'postgres',
    // A small pool: many test apps share one server (max_connections is 100 by default).
    env: { DATABASE_URL: url, DATABASE_SEARCH_PATH: schema, DATABASE_POOL_SIZE: '4' },
    options: { searchPath: schema, poolSize: 4 },
    schema,
    drop,
  }
}
