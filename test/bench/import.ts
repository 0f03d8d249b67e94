// Import benchmark: `npm run bench:import`. Writes a JSON Lines file of BENCH_ROWS grants (tokens on
// every row, a refresh token alone on some; three rows in four with scopes; two apps; one row in
// four names a user the seeded ledger has with a newer grant, one in twenty an older one), then runs
// the real command (`import-grants`, a separate process, as an operator would) into:
//   BENCH_SCENARIO=empty    an empty ledger with one active rollout (the default)
//   BENCH_SCENARIO=seeded   the dashboard bench's ledger (test/bench/seed.ts: BENCH_USERS users,
//                           3 grants each) with its rollout built: supersedes, unchanged rows and
//                           membership moves of existing users
// While it runs, this process serves the app and a signed-in operator loads the rollout's page
// (GET /admin/rollouts/:id) every 200 ms: median, p95 and max latency. Then the same file again
// (every row unchanged). Prints rows/s, seconds, the command's peak RSS, and whether the rollout
// counters equal a recount (exit 1 if not).
//   BENCH_ROWS=1000000     rows in the file (default 1,000,000)
//   BENCH_USERS=1000000    seeded ledger size (BENCH_SCENARIO=seeded)
//   BENCH_BATCH=2000       the command's --batch-size (default: the command's default)
//   DATABASE_URL=postgres://… DATABASE_SEARCH_PATH=bench_import   on PostgreSQL (that schema is
//                          dropped and recreated)
// On SQLite the seeded scenario seeds data/bench/bench.db once (several minutes for 1M users; the
// same ledger `npm run bench` uses) and imports into a copy of it.
import { spawn } from 'node:child_process'
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { sql } from 'kysely'
import { buildApp } from '../../src/app.js'
import { syncApps } from '../../src/apps/apps.js'
import { systemClock } from '../../src/clock.js'
import { loadConfig, projectRoot } from '../../src/config.js'
import { type Db, openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { buildUntilReady, startRollout } from '../../src/rollouts/rollouts.js'
import { freePort } from '../helpers/app.js'
import { signedInOperator } from '../helpers/ledger.js'
import { seedOnce } from './seed.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const USERS = Number(process.env.BENCH_USERS ?? 1_000_000)
const SCENARIO = process.env.BENCH_SCENARIO ?? 'empty'
if (SCENARIO !== 'empty' && SCENARIO !== 'seeded') throw new Error('BENCH_SCENARIO must be empty or seeded')
const BATCH = process.env.BENCH_BATCH
const SEED_NOW = Date.UTC(2026, 0, 15) // the dashboard bench's seeding time (test/bench/run.ts)
const ROLLOUT_NAME = 'bench: production-v2'

const dir = mkdtempSync(join(tmpdir(), 'scope-ledger-bench-import-'))
const postgres = Boolean(process.env.DATABASE_URL?.trim())
const port = await freePort()
const env = {
  ...process.env,
  NODE_ENV: 'development',
  DATA_DIR: dir,
  LOG_LEVEL: 'silent',
  HOST: '127.0.0.1',
  PORT: String(port),
  PUBLIC_URL: `http://127.0.0.1:${port}`,
  RATE_LIMIT_SIGN_IN_PER_MINUTE: '1000',
  ...(postgres ? {} : { DATABASE_PATH: join(dir, 'bench.db') }),
}
const config = loadConfig(env)
const log = (line: string) => console.log(line)
log(
  `Import bench on ${config.database.kind}: ${ROWS.toLocaleString('en-US')} rows into ${SCENARIO === 'empty' ? 'an empty ledger' : `the seeded ledger (${USERS.toLocaleString('en-US')} users)`}`,
)

// 1. The ledger. On SQLite the seeded one is prepared once in data/bench/bench.db (shared with
// `npm run bench`) and copied, since an import changes it.
if (SCENARIO === 'seeded' && !postgres) {
  const source = resolve(projectRoot, 'data/bench/bench.db')
  mkdirSync(dirname(source), { recursive: true })
  const shared = await openDatabase({ ...config.database, path: source } as typeof config.database)
  await prepareLedger(shared)
  await sql`pragma wal_checkpoint(truncate)`.execute(shared)
  await shared.destroy()
  copyFileSync(source, join(dir, 'bench.db'))
  log(`Copied the seeded ledger ${source}`)
}
const db = await openDatabase(config.database)
if (postgres) {
  const schema = config.database.kind === 'postgres' ? (config.database.searchPath ?? 'public') : 'public'
  await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await sql`create schema ${sql.id(schema)}`.execute(db)
}
const rolloutId = await prepareLedger(db)

// 2. The file.
const file = join(dir, 'grants.jsonl')
await writeFile(file)

// 3. The app, and an operator who keeps loading the rollout's page.
const app = await buildApp({ config, db, clock: systemClock, backgroundJobs: false })
await app.listen({ host: '127.0.0.1', port })
const operator = await signedInOperator(db, config.publicUrl, Date.now(), 'bench')

// The page alone first, for comparison (this machine may be busy with other work).
const idle: number[] = []
for (let i = 0; i < 15; i++) idle.push((await loadPage()).ms)
const quiet = stats(idle)
log(
  `rollout page before the import: median ${quiet.median.toFixed(0)} ms, p95 ${quiet.p95.toFixed(0)} ms, max ${quiet.max.toFixed(0)} ms`,
)
let ok = true
for (const label of ['import', 'same file again']) {
  const run = await runImport(label)
  const page = stats(run.latencies)
  // The command's own time (its summary line); the process also spends a few seconds starting.
  const seconds = Number(/ in ([\d.]+) s/.exec(run.summary)?.[1] ?? run.seconds)
  log(
    `${config.database.kind} ${SCENARIO} ${label}: ${ROWS.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s ` +
      `(${Math.round(ROWS / seconds).toLocaleString('en-US')} rows/s; process ${run.seconds.toFixed(1)} s) — ${run.summary}\n` +
      `  peak RSS of the command ${run.peakMb} MB; rollout page meanwhile: median ${page.median.toFixed(0)} ms, ` +
      `p95 ${page.p95.toFixed(0)} ms, max ${page.max.toFixed(0)} ms over ${run.latencies.length} loads` +
      (run.failures ? `, ${run.failures} not 200` : ''),
  )
  if (run.code !== 0 || run.failures) ok = false
}
const nonZero = (m: Map<string, number>) => JSON.stringify([...m].filter(([, n]) => n !== 0).sort())
const exact = nonZero(await exactCounts(db, rolloutId)) === nonZero(await storedCounts(db, rolloutId))
log(`rollout counters equal a recount: ${exact}`)
await app.close()
await db.destroy()
rmSync(dir, { recursive: true, force: true })
if (!exact || !ok) process.exitCode = 1

/** Schema, apps, the seeded users if asked, and the rollout whose page is timed. */
async function prepareLedger(db: Db): Promise<number> {
  await migrateToLatest(db)
  await syncApps(db, config.apps, Date.now())
  if (SCENARIO === 'seeded') await seedOnce(db, { users: USERS, now: SEED_NOW }, log)
  return ensureRollout(db)
}

/** The rollout whose page is timed: built over the seeded users, or empty (the import fills it). */
async function ensureRollout(db: Db): Promise<number> {
  const v2 = await db.selectFrom('oauth_apps').selectAll().where('key', '=', 'production-v2').executeTakeFirstOrThrow()
  const existing = await db
    .selectFrom('rollouts')
    .select(['id', 'build_status'])
    .where('name', '=', ROLLOUT_NAME)
    .where('status', '=', 'active')
    .executeTakeFirst()
  const id =
    existing?.id ??
    (await startRollout(db, { name: ROLLOUT_NAME, appId: v2.id, scopes: v2.scopes.split(' ') }, 'bench', Date.now()))
  if (existing?.build_status !== 'ready') {
    const build = await buildUntilReady(db, id)
    if (SCENARIO === 'seeded') log(`Built the rollout over the seeded users in ${(build.totalMs / 1000).toFixed(0)} s`)
  }
  // Only this ledger's tables: a bare ANALYZE on PostgreSQL walks every schema in the database.
  await (postgres
    ? sql`analyze end_users, grants, grant_scopes, rollout_members, rollout_member_missing`
    : sql`analyze`
  ).execute(db)
  return id
}

async function writeFile(path: string): Promise<void> {
  const out = createWriteStream(path)
  const expires = new Date(Date.now() + 3_600_000).toISOString()
  const v2 = 'read_issuer_capitalizationtablesummary read_issuer_info read_user_info'
  for (let i = 0; i < ROWS; i++) {
    // One row in four: a seeded user, authorized after the seeded grants (supersedes the active
    // one); one in twenty: a seeded user with a row older than their grants (unchanged).
    const seeded = i % 4 === 0 || i % 20 === 1
    const id = seeded ? `cu_${String((i % USERS) + 1).padStart(7, '0')}` : `bench-${i}`
    const line = JSON.stringify({
      carta_user_id: id,
      client_id: i % 3 ? 'scope-ledger-production-v2' : 'scope-ledger-production-v1',
      email: `user${i}@example.com`,
      name: `User ${i}`,
      ...(i % 4 !== 3 ? { scopes: i % 3 ? (i % 7 ? v2 : 'read_user_info') : 'read_user_info read_issuer_info' } : {}),
      granted_at: i % 20 === 1 ? '2020-01-15T10:00:00Z' : '2025-11-15T10:00:00Z',
      ...(i % 10 ? { access_token: `at-${i}-${'x'.repeat(40)}`, access_expires_at: expires } : {}),
      refresh_token: `rt-${i}-${'y'.repeat(40)}`,
    })
    if (!out.write(`${line}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

interface Run {
  seconds: number
  summary: string
  code: number | null
  peakMb: number
  latencies: number[]
  failures: number
}

/** The command in its own process; meanwhile the rollout page every 200 ms and the command's peak RSS. */
async function runImport(label: string): Promise<Run> {
  const started = performance.now()
  const main = resolve(projectRoot, 'src/cli/main.ts')
  // As `npm run cli` starts it (package.json): a 4 MB young generation keeps the peak RSS of a
  // long import ~50 MB lower at the same speed (V8's default lets it grow to 16 MB per semi-space).
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=4', '--import=tsx', main, 'import-grants', file, ...(BATCH ? ['--batch-size', BATCH] : [])],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b) => {
    stdout += b
  })
  child.stderr.on('data', (b) => {
    stderr += b
  })
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
  let running = true
  void exited.then(() => {
    running = false
  })
  let peakKb = 0
  const latencies: number[] = []
  let failures = 0
  while (running) {
    const tick = performance.now()
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0))
    } catch {}
    const page = await loadPage()
    latencies.push(page.ms)
    if (page.status !== 200) failures += 1
    await new Promise((r) => setTimeout(r, Math.max(0, 200 - (performance.now() - tick))))
  }
  const code = await exited
  if (code !== 0) log(`${label}: the command exited with ${code}\n${stderr.slice(-2000)}`)
  return {
    seconds: (performance.now() - started) / 1000,
    summary: stdout.trim().split('\n')[0] ?? '',
    code,
    peakMb: Math.round(peakKb / 1024),
    latencies,
    failures,
  }
}

async function loadPage(): Promise<{ ms: number; status: number }> {
  const t0 = performance.now()
  const res = await operator.get(`${config.publicUrl}/admin/rollouts/${rolloutId}`)
  return { ms: performance.now() - t0, status: res.status }
}

function stats(samples: number[]): { median: number; p95: number; max: number } {
  if (samples.length === 0) return { median: 0, p95: 0, max: 0 }
  const s = [...samples].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!
  return { median: at(0.5), p95: at(0.95), max: s.at(-1)! }
}
