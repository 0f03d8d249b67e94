// `npm run bench:api`: the API over HTTP with 16 concurrent clients, on the bench ledger
// (test/bench/seed.ts: BENCH_USERS end users, 3 grants each). Times GET /api/v1/users/{id} and the
// access-token endpoint for tokens that need no refresh (tokens are stored for TOKEN_USERS active
// grants, valid for a day). Prints p50, p99, requests per second and the server's CPU time per
// request for each; the clients run in a child process (api-load.mjs).
//   BENCH_USERS=100000 DATABASE_PATH=data/bench/small.db npm run bench:api
//                                             a smaller ledger (reseeds when the size differs)
//   BENCH_SECONDS=10 npm run bench:api        longer runs
import { resolve } from 'node:path'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createApiKey } from '../../src/api/keys.js'
import { buildApp } from '../../src/app.js'
import { syncApps } from '../../src/apps/apps.js'
import { systemClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { isPostgres } from '../../src/db/dialect.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { TokenCipher } from '../../src/grants/token-cipher.js'
import { seedOnce } from './seed.js'
import { benchDataDir, servedBenchConfig } from './served-config.js'

const USERS = Number(process.env.BENCH_USERS ?? 1_000_000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CLIENTS = 16
const TOKEN_USERS = 5_000

const { config, port } = await servedBenchConfig({
  API_RATE_LIMIT_PER_MINUTE: '10000000',
  DATABASE_PATH: process.env.DATABASE_PATH ?? resolve(benchDataDir, 'bench.db'),
})
const db = await openDatabase(config.database)
console.log(
  `Scope Ledger API bench on ${isPostgres(db) ? 'postgresql' : 'sqlite'}: ${USERS.toLocaleString('en-US')} users, ${CLIENTS} clients, ${SECONDS} s per endpoint`,
)
await migrateToLatest(db)
const now = Date.now()
await syncApps(db, config.apps, now)
await seedOnce(db, { users: USERS, now: Date.UTC(2026, 0, 15) }, (line) => console.log(line))

// Tokens for the first TOKEN_USERS users with an active grant, valid for a day (no refresh needed).
const cipher = new TokenCipher(config.tokenKeys)
const active = await db
  .selectFrom('end_users')
  .select(['carta_user_id', 'active_grant_id'])
  .where('active_grant_id', 'is not', null)
  .orderBy('id')
  .limit(TOKEN_USERS)
  .execute()
await db.deleteFrom('grant_tokens').execute()
await db.transaction().execute(async (trx) => {
  for (let i = 0; i < active.length; i += 500) {
    await trx
      .insertInto('grant_tokens')
      .values(
        active.slice(i, i + 500).map((u) => {
          const sealed = cipher.seal(`bench-access-${u.active_grant_id}`)
          return {
            grant_id: u.active_grant_id!,
            key_id: sealed.keyId,
            access_token: sealed.value,
            refresh_token: null,
            access_expires_at: now + 24 * 3600_000,
            updated_at: now,
          }
        }),
      )
      .execute()
  }
})
const { key } = await createApiKey(db, { name: 'bench', permissions: ['read', 'tokens'], actor: 'bench' }, now)

const app = await buildApp({ config, db, clock: systemClock, backgroundJobs: false })
await app.listen({ host: '127.0.0.1', port })
const base = `http://127.0.0.1:${port}`

function pick(n: number, make: (i: number) => string): string[] {
  return Array.from({ length: 20_000 }, () => make(1 + Math.floor(Math.random() * n)))
}

async function load(label: string, paths: string[]): Promise<void> {
  // The server's own CPU time per request: unlike latency, it barely moves with other load on the machine.
  const cpuBefore = process.cpuUsage()
  const result = await new Promise<{ latencies: number[]; errors: number }>((resolveRun, reject) => {
    // A separate process: a load generator on the server's thread (or in a worker of its process)
    // competes for the same CPU scheduling and GC and inflates the latencies it measures.
    const child = fork(fileURLToPath(new URL('./api-load.mjs', import.meta.url)), [], { stdio: 'inherit' })
    child.once('message', (m) => resolveRun(m as { latencies: number[]; errors: number }))
    child.once('error', reject)
    child.once('exit', (code) => code !== 0 && reject(new Error(`load generator exited with ${code}`)))
    child.send({ base, key, paths, clients: CLIENTS, durationMs: SECONDS * 1000 })
  })
  const cpu = process.cpuUsage(cpuBefore)
  const sorted = result.latencies.sort((a, b) => a - b)
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2)
  console.log(
    `${label.padEnd(44)} n=${sorted.length}  p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  ${(sorted.length / SECONDS).toFixed(0)} req/s  non-200: ${result.errors}  server CPU ${((cpu.user + cpu.system) / sorted.length).toFixed(0)} µs/req`,
  )
}

const cartaId = (i: number) => `cu_${String(i).padStart(7, '0')}`
await load(
  'warm-up (users)',
  pick(USERS, (i) => `/api/v1/users/${cartaId(i)}`),
)
await load(
  'GET /api/v1/users/{cartaUserId}',
  pick(USERS, (i) => `/api/v1/users/${cartaId(i)}`),
)
await load(
  'GET /api/v1/users/{cartaUserId}/access-token',
  pick(active.length, (i) => `/api/v1/users/${active[i - 1]!.carta_user_id}/access-token`),
)
await app.close()
await db.destroy()
