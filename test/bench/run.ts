// `npm run bench`: seeds (or reuses) a ledger of 1,000,000 end users and 3,000,000 grants under
// data/bench/, creates a rollout for production-v2, then times the dashboard's queries through
// the same functions the routes call. Median and p95 over RUNS runs each.
//   BENCH_USERS=100000 npm run bench      smaller ledger (reseeds when the size differs)
//   BENCH_RUNS=50 npm run bench           more runs
//   BENCH_RECREATE=1 npm run bench        create a fresh rollout (times the set-based build)
//   DATABASE_URL=postgres://… npm run bench   the same on PostgreSQL
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { sql } from 'kysely'
import { syncApps } from '../../src/apps/apps.js'
import { loadConfig, projectRoot } from '../../src/config.js'
import { openDatabase } from '../../src/db/index.js'
import { isPostgres } from '../../src/db/dialect.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { rolloutSummary } from '../../src/rollouts/coverage.js'
import { type LackingFilter, encodeCursor, listLacking } from '../../src/rollouts/lacking.js'
import { DEFAULT_CHUNK_SIZE } from '../../src/rollouts/build.js'
import { buildUntilReady, startRollout } from '../../src/rollouts/rollouts.js'
import { userPageData } from '../../src/admin/user-page.js'
import { seedOnce } from './seed.js'

const USERS = Number(process.env.BENCH_USERS ?? 1_000_000)
const RUNS = Math.max(20, Number(process.env.BENCH_RUNS ?? 30))
const ROLLOUT_NAME = 'bench: production-v2'

const dataDir = resolve(projectRoot, 'data/bench')
mkdirSync(dataDir, { recursive: true })
const config = loadConfig({
  ...process.env,
  NODE_ENV: 'development',
  DATA_DIR: dataDir,
  LOG_LEVEL: 'silent',
  DATABASE_PATH: process.env.DATABASE_PATH ?? resolve(dataDir, 'bench.db'),
})
const db = await openDatabase(config.database)
const engine = isPostgres(db)
  ? 'postgresql'
  : `sqlite (${config.database.kind === 'sqlite' ? config.database.path : ''})`
console.log(`Scope Ledger bench on ${engine}: ${USERS.toLocaleString('en-US')} users, ${RUNS} runs per query`)
await migrateToLatest(db)
const now = Date.UTC(2026, 0, 15)
await syncApps(db, config.apps, now)

await seedOnce(db, { users: USERS, now }, (line) => console.log(line))

const v2 = await db
  .selectFrom('oauth_apps')
  .select(['id', 'scopes'])
  .where('key', '=', 'production-v2')
  .executeTakeFirstOrThrow()
const v1 = await db.selectFrom('oauth_apps').select('id').where('key', '=', 'production-v1').executeTakeFirstOrThrow()
let rollout = await db
  .selectFrom('rollouts')
  .select(['id', 'required_scopes'])
  .where('name', '=', ROLLOUT_NAME)
  .where('status', '=', 'active')
  .executeTakeFirst()
if (!rollout || process.env.BENCH_RECREATE) {
  if (rollout) await db.deleteFrom('rollouts').where('id', '=', rollout.id).execute() // cascades to members and counts
  const t0 = performance.now()
  const id = await startRollout(
    db,
    { name: ROLLOUT_NAME, appId: v2.id, scopes: v2.scopes.split(' ') },
    'operator:bench',
    now,
  )
  console.log(
    `Created the rollout row in ${(performance.now() - t0).toFixed(0)} ms (what the operator's request waits for)`,
  )
  const build = await buildUntilReady(db, id) // the background builder's loop, run here to completion
  console.log(
    `Built its membership in ${(build.totalMs / 1000).toFixed(1)} s: ${build.chunks} chunks of ${DEFAULT_CHUNK_SIZE.toLocaleString('en-US')} users, ` +
      `longest chunk transaction ${build.maxChunkMs.toFixed(0)} ms, final recount transaction ${build.finishMs.toFixed(0)} ms`,
  )
  // Fresh statistics for the new member rows on both engines (PostgreSQL's autovacuum may be off or
  // late: stale stats made the first lacking page a 260 ms bitmap scan + sort instead of an index walk).
  await (isPostgres(db) ? sql`analyze rollout_members, rollout_member_missing, rollout_counts` : sql`ANALYZE`).execute(
    db,
  )
  rollout = await db
    .selectFrom('rollouts')
    .select(['id', 'required_scopes'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
}
const rid = rollout.id

/** The cursor ~80% into a filtered list. OFFSET only here, to find it; the app never uses it. */
async function deepCursor(filter: LackingFilter): Promise<string> {
  let q = db
    .selectFrom('rollout_members as m')
    .select(['m.user_id', 'm.authorized_at'])
    .where('m.rollout_id', '=', rid)
    .where('m.needs_action', '=', 1)
  if (filter.scope)
    q = q.where((eb) =>
      eb.exists(
        eb
          .selectFrom('rollout_member_missing as mm')
          .select('mm.user_id')
          .whereRef('mm.rollout_id', '=', 'm.rollout_id')
          .where('mm.scope', '=', filter.scope!)
          .whereRef('mm.user_id', '=', 'm.user_id'),
      ),
    )
  if (filter.appId !== undefined) q = q.where('m.app_id', '=', filter.appId)
  const count = Number(
    (
      await q
        .clearSelect()
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  )
  const dir = filter.sort === 'newest' ? 'desc' : 'asc'
  q = filter.sort === 'user' ? q.orderBy('m.user_id') : q.orderBy('m.authorized_at', dir).orderBy('m.user_id', dir)
  const row = await q
    .offset(Math.floor(count * 0.8))
    .limit(1)
    .executeTakeFirstOrThrow()
  return encodeCursor(filter.sort, { userId: row.user_id, authorizedAt: Number(row.authorized_at) })
}

function stats(samples: number[]): { median: number; p95: number } {
  const s = [...samples].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!
  return { median: at(0.5), p95: at(0.95) }
}

const results: Array<{ name: string; median: number; p95: number; rows: string; target: number }> = []
async function time(name: string, target: number, fn: () => Promise<string>): Promise<void> {
  let rows = await fn() // warm-up
  const samples: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    rows = await fn()
    samples.push(performance.now() - t0)
  }
  const { median, p95 } = stats(samples)
  results.push({ name, median, p95, rows, target })
  console.log(
    `${name.padEnd(52)} median ${median.toFixed(2).padStart(8)} ms   p95 ${p95.toFixed(2).padStart(8)} ms   ${rows}${median > target ? `   MISSES the ${target} ms target` : ''}`,
  )
}

const page = (filter: LackingFilter, after?: string) => async () => {
  const r = await listLacking(db, rid, filter, after ? { after } : {})
  return `${r.rows.length} rows${r.nextCursor ? ', more' : ''}`
}

console.log('')
await time('rollout summary (rollout_counts)', 100, async () => {
  const s = await rolloutSummary(db, rid, rollout!.required_scopes)
  return `${s.members} members, ${s.covered} covered, ${s.lacking} lacking, ${s.reconnect} reconnect`
})
const filters: Array<[string, LackingFilter]> = [
  ['no filter', { sort: 'user' }],
  ['scope read_issuer_capitalizationtablesummary', { sort: 'user', scope: 'read_issuer_capitalizationtablesummary' }],
  ['scope read_user_info', { sort: 'user', scope: 'read_user_info' }],
  ['app production-v1', { sort: 'user', appId: v1.id }],
  ['app production-v2', { sort: 'user', appId: v2.id }],
  ['sort oldest', { sort: 'oldest' }],
  ['sort newest', { sort: 'newest' }],
  ['scope captable + sort newest', { sort: 'newest', scope: 'read_issuer_capitalizationtablesummary' }],
  ['app production-v1 + sort oldest', { sort: 'oldest', appId: v1.id }],
]
for (const [label, filter] of filters) {
  await time(`lacking, first page, ${label}`, 50, page(filter))
  const cursor = await deepCursor(filter)
  await time(`lacking, deep page (80%), ${label}`, 50, page(filter, cursor))
}
await time('lacking, search by email prefix', 50, page({ sort: 'user', search: 'user12345' }))
await time('lacking, search by exact Carta id', 50, page({ sort: 'user', search: 'cu_0777777' }))
let n = 0
await time('user page (identity, grants, links, audit)', 50, async () => {
  const id = 1 + ((n++ * 7919) % USERS)
  const d = await userPageData(db, id, now)
  return `${d?.grants.length ?? 0} grants`
})

const misses = results.filter((r) => r.median > r.target)
console.log(
  `\n${misses.length === 0 ? 'Every query meets its target.' : `${misses.length} queries miss their target.`}`,
)
await db.destroy()
process.exitCode = misses.length ? 1 : 0
