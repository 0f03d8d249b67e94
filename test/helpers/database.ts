// Which database a test app gets: a fresh SQLite file by default; a fresh PostgreSQL schema
// when TEST_DATABASE_URL is set (see README, "Running the tests on PostgreSQL").
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'

export interface TestDatabase {
  env: Record<string, string>
  options: { searchPath?: string }
  drop(): Promise<void>
}

export async function testDatabase(dataDir: string): Promise<TestDatabase> {
  const url = process.env.TEST_DATABASE_URL
  if (!url) return { env: { DATABASE_PATH: join(dataDir, 'test.db') }, options: {}, drop: async () => {} }
  const schema = `t_${randomBytes(6).toString('hex')}`
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`create schema ${schema}`)
  await client.end()
  return {
    env: { DATABASE_URL: url, DATABASE_SEARCH_PATH: schema },
    options: { searchPath: schema },
    drop: async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      await c.query(`drop schema if exists ${schema} cascade`)
      await c.end()
    },
  }
}
