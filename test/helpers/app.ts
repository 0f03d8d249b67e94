// Starts the real app on a loopback port with a real database file in a temp directory.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { buildApp } from '../../src/app.js'
import { type Clock, ManualClock } from '../../src/clock.js'
import { type Config, loadConfig } from '../../src/config.js'
import { syncApps } from '../../src/apps/apps.js'
import { type Db, openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { testDatabase } from './database.js'

export interface TestApp {
  url: string
  app: FastifyInstance
  db: Db
  config: Config
  clock: Clock
  dataDir: string
  /** Every log line the app wrote, parsed. */
  logs: Array<Record<string, unknown>>
  close(): Promise<void>
}

export interface TestAppOptions {
  /** Extra environment (same variables as production; see README). */
  env?: Record<string, string>
  clock?: Clock
  backgroundJobs?: boolean
  /** Adds test-only routes before the app starts listening. */
  extend?: (app: FastifyInstance) => void
  /** Sees every route as it is declared (src/app.ts BuildOptions.onRoute). */
  onRoute?: (route: RouteOptions) => void
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A free loopback port (tiny race between close and reuse; acceptable in tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** One pass of the rollout-build job (as the dashboard's kick starts it), then waits for the builds. */
export async function buildRollouts(app: FastifyInstance): Promise<void> {
  await app.jobs.run('rollout-build')
  await app.jobs.idle()
}

export async function startTestApp(t: Teardown, options: TestAppOptions = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'scope-ledger-test-'))
  const port = await freePort()
  const database = await testDatabase(dataDir)
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    RATE_LIMIT_OAUTH_PER_MINUTE: '10000',
    RATE_LIMIT_SIGN_IN_PER_MINUTE: '10000',
    // The sandbox's Carta rate limit stays on (its headers are exercised) but out of the way;
    // test/sandbox/rate-limit.test.ts proves the limit itself.
    SANDBOX_RATE_LIMIT_PER_SECOND: '1000',
    SANDBOX_RATE_LIMIT_PER_MINUTE: '100000',
    ...database.env,
    ...options.env,
  })
  const clock = options.clock ?? new ManualClock(Date.now())
  const db = await openDatabase(config.database, database.options)
  await migrateToLatest(db)
  await syncApps(db, config.apps, clock.now())
  const logs: Array<Record<string, unknown>> = []
  const logStream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line))
      done()
    },
  })
  const app = await buildApp({
    config,
    db,
    clock,
    backgroundJobs: options.backgroundJobs ?? false,
    logStream,
    ...(options.onRoute ? { onRoute: options.onRoute } : {}),
  })
  options.extend?.(app)
  await app.listen({ host: '127.0.0.1', port })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await app.close()
    await db.destroy()
    await database.drop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  t.teardown(close)
  return { url: config.publicUrl, app, db, config, clock, dataDir, logs, close }
}
