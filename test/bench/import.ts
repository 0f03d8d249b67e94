// Import benchmark: `npm run bench:import`. Writes a JSON Lines file of BENCH_ROWS grants (tokens
// on every row; half with scopes, half without, across two apps), imports it into an empty ledger
// with one active rollout (so every row also moves rollout membership), then imports it again (every
// row unchanged), and prints rows/s, seconds and peak RSS for each, plus the extrapolation to
// 1,000,000 rows. Checks that the rollout counters equal a recount at the end.
//   BENCH_ROWS=100000      rows in the file (default 100,000)
//   DATABASE_URL=postgres://… DATABASE_SEARCH_PATH=bench_import   on PostgreSQL (schema emptied first)
import { createWriteStream, mkdtempSync, rmSync, createReadStream } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { systemClock } from '../../src/clock.js'
import { loadConfig } from '../../src/config.js'
import { syncApps } from '../../src/apps/apps.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createDeps } from '../../src/deps.js'
import { importGrants } from '../../src/imports/import.js'
import { silentLogger } from '../../src/log.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const dir = mkdtempSync(join(tmpdir(), 'scope-ledger-bench-import-'))
const postgres = Boolean(process.env.DATABASE_URL?.trim())
const config = loadConfig({
  ...process.env,
  NODE_ENV: 'development',
  DATA_DIR: dir,
  LOG_LEVEL: 'silent',
  ...(postgres ? {} : { DATABASE_PATH: join(dir, 'bench.db') }),
})
const db = await openDatabase(config.database)
if (postgres) {
  const schema = config.database.kind === 'postgres' ? (config.database.searchPath ?? 'public') : 'public'
  await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await sql`create schema ${sql.id(schema)}`.execute(db)
}
await migrateToLatest(db)
await syncApps(db, config.apps, Date.now())
const v2 = await db.selectFrom('oauth_apps').selectAll().where('key', '=', 'production-v2').executeTakeFirstOrThrow()
const rollout = await db
  .insertInto('rollouts')
  .values({
    name: 'bench',
    app_id: v2.id,
    required_scopes: v2.scopes,
    created_by: 'bench',
    created_at: Date.now(),
    archived_at: null,
  })
  .returning('id')
  .executeTakeFirstOrThrow()

const file = join(dir, 'grants.jsonl')
const out = createWriteStream(file)
const expires = new Date(Date.now() + 3_600_000).toISOString()
for (let i = 0; i < ROWS; i++) {
  const line = JSON.stringify({
    carta_user_id: `bench-${i}`,
    client_id: i % 3 ? 'scope-ledger-production-v2' : 'scope-ledger-production-v1',
    email: `user${i}@example.com`,
    name: `User ${i}`,
    ...(i % 2 ? { scopes: i % 3 ? v2.scopes : 'read_user_info' } : {}),
    granted_at: '2025-01-15T10:00:00Z',
    access_token: `at-${i}-${'x'.repeat(40)}`,
    refresh_token: `rt-${i}-${'y'.repeat(40)}`,
    access_expires_at: expires,
  })
  if (!out.write(`${line}\n`)) await once(out, 'drain')
}
out.end()
await once(out, 'finish')

const deps = { ...createDeps({ config, db, clock: systemClock }), log: silentLogger }
let peak = 0
const sample = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 100)
for (const label of ['empty ledger', 'same file again']) {
  const started = performance.now()
  const result = await importGrants(deps, createReadStream(file, { highWaterMark: 256 * 1024 }), {
    format: 'jsonl',
    fileName: 'grants.jsonl',
    actor: 'bench',
    ...(process.env.BENCH_BATCH ? { batchSize: Number(process.env.BENCH_BATCH) } : {}),
  })
  const secs = (performance.now() - started) / 1000
  peak = Math.max(peak, process.memoryUsage().rss)
  console.log(
    `${config.database.kind} ${label}: ${ROWS} rows in ${secs.toFixed(1)} s (${Math.round(ROWS / secs)} rows/s; ` +
      `created ${result.created}, unchanged ${result.unchanged}, rejected ${result.rejected}); ` +
      `1,000,000 rows ≈ ${Math.round((secs * 1_000_000) / ROWS)} s at this rate; peak RSS ${Math.round(peak / 2 ** 20)} MB`,
  )
}
clearInterval(sample)
const nonZero = (m: Map<string, number>) => JSON.stringify([...m].filter(([, n]) => n !== 0).sort())
const exact = nonZero(await exactCounts(db, rollout.id)) === nonZero(await storedCounts(db, rollout.id))
console.log(`rollout counters equal a recount: ${exact}`)
await db.destroy()
rmSync(dir, { recursive: true, force: true })
if (!exact) process.exitCode = 1
