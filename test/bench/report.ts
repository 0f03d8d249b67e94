// Report benchmark: `npm run bench:report`. Opens the bench database the rollouts bench seeds
// (data/bench/bench.db, 1,000,000 users, reused as is) — or, when it is not there, seeds a compact
// database of its own (data/bench/report-bench.db: 1M users, their rollout membership, missing
// scopes and 50k reauthorization links) — then runs the full report (queries, files, snapshot
// rows) 5 times and prints the median seconds and the peak RSS. The runs it adds are removed.
//   BENCH_REPORT_DB=path   use another database file
//   BENCH_USERS=200000     size of the compact self-seeded database
//   DATABASE_URL=postgres://… DATABASE_SEARCH_PATH=bench   on PostgreSQL: reuses the ledger and
//                          rollout `npm run bench` made there (run that first)
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { systemClock } from '../../src/clock.js'
import { loadConfig, projectRoot } from '../../src/config.js'
import { syncApps } from '../../src/apps/apps.js'
import { openDatabase } from '../../src/db/index.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { manualSlotKey, runReport } from '../../src/reports/runs.js'

const dataDir = resolve(projectRoot, 'data/bench')
const shared = resolve(dataDir, 'bench.db')
const own = resolve(dataDir, 'report-bench.db')
const USERS = Number(process.env.BENCH_USERS ?? 1_000_000)

async function hasRolloutMembers(path: string): Promise<boolean> {
  if (!existsSync(path)) return false
  const probe = new Database(path, { readonly: true, fileMustExist: true })
  try {
    const row = probe.prepare("select count(*) as n from sqlite_master where name = 'rollout_members'").get() as {
      n: number
    }
    if (!row.n) return false
    return Boolean(
      probe
        .prepare(
          "select 1 from rollout_members m join rollouts r on r.id = m.rollout_id where r.status = 'active' limit 1",
        )
        .get(),
    )
  } finally {
    probe.close()
  }
}

// With DATABASE_URL set the report runs on PostgreSQL: the SQLite files above are not used (the
// compact seeder writes SQLite directly), so the ledger `npm run bench` seeded in the same
// DATABASE_URL/DATABASE_SEARCH_PATH is required.
const postgres = Boolean(process.env.DATABASE_URL?.trim())
const path = postgres ? '' : (process.env.BENCH_REPORT_DB ?? ((await hasRolloutMembers(shared)) ? shared : own))
const config = loadConfig({
  ...process.env,
  NODE_ENV: 'development',
  DATA_DIR: dataDir,
  LOG_LEVEL: 'silent',
  ...(postgres ? {} : { DATABASE_PATH: path }),
})
const db = await openDatabase(config.database)
await migrateToLatest(db)
await syncApps(db, config.apps, Date.now())
const where =
  config.database.kind === 'postgres' ? `postgresql (schema ${config.database.searchPath ?? 'public'})` : path

if (postgres) {
  const active = await db
    .selectFrom('rollout_members as m')
    .innerJoin('rollouts as r', 'r.id', 'm.rollout_id')
    .select('m.user_id')
    .where('r.status', '=', 'active')
    .limit(1)
    .executeTakeFirst()
  if (!active) {
    console.error(
      `No active rollout with members in ${where}: run \`npm run bench\` with the same DATABASE_URL and DATABASE_SEARCH_PATH first (it seeds 1M users and creates the rollout).`,
    )
    await db.destroy()
    process.exit(2)
  }
} else if (path === own && !(await hasRolloutMembers(own))) await seedCompact(own, USERS)

const members = Number(
  (
    await db
      .selectFrom('rollout_members')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
  ).n,
)
const missing = Number(
  (
    await db
      .selectFrom('rollout_member_missing')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
  ).n,
)
const links = Number(
  (
    await db
      .selectFrom('reauth_links')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
  ).n,
)
console.log(
  `Database ${where}: ${members.toLocaleString('en')} rollout members, ${missing.toLocaleString('en')} missing-scope rows, ${links.toLocaleString('en')} links`,
)

const out = mkdtempSync(join(tmpdir(), 'scope-ledger-report-bench-'))
const log = {
  info: () => {},
  warn: (obj: object, msg: string) => console.error(`warning: ${msg} ${JSON.stringify(obj).slice(0, 300)}`),
  error: (obj: object, msg: string) => console.error(`error: ${msg} ${JSON.stringify(obj)}`),
}
const ctx = {
  db,
  config: { ...config, reports: { ...config.reports, dir: out, webhookUrl: null } },
  clock: systemClock,
  log,
}
const seconds: number[] = []
const runIds: number[] = []
for (let i = 0; i < 5; i++) {
  const t0 = performance.now()
  const outcome = await runReport(ctx, { slotKey: manualSlotKey(), trigger: 'manual' })
  const s = (performance.now() - t0) / 1000
  if (outcome.status !== 'succeeded')
    throw new Error(`report run failed: ${outcome.status === 'failed' ? outcome.error : 'skipped'}`)
  runIds.push(outcome.runId)
  seconds.push(s)
  const r = outcome.document.rollouts[0]
  console.log(
    `run ${i + 1}: ${s.toFixed(2)} s · ${outcome.document.rollouts.length} rollouts${r ? ` · first: ${r.name} ${r.members} members, ${r.coveragePct}% covered` : ''}`,
  )
}
await db.deleteFrom('report_runs').where('id', 'in', runIds).execute()
await db.destroy()
rmSync(out, { recursive: true, force: true })
const sorted = [...seconds].sort((a, b) => a - b)
// Peak RSS is this Node process (the app's side); on PostgreSQL the server's own memory is not in it.
console.log(
  `median ${sorted[2]!.toFixed(2)} s (min ${sorted[0]!.toFixed(2)}, max ${sorted[4]!.toFixed(2)}) · peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB${postgres ? ' (Node process; PostgreSQL server memory not included)' : ''}`,
)

/** 1M users with one active rollout: 60% covered, 28% lacking 1–2 scopes, 12% to reconnect. */
async function seedCompact(file: string, users: number): Promise<void> {
  const started = performance.now()
  const raw = new Database(file)
  raw.pragma('synchronous = OFF')
  const apps = raw.prepare('select id, key from oauth_apps').all() as Array<{ id: number; key: string }>
  const app = (key: string) => apps.find((a) => a.key === key)!.id
  const now = Date.now()
  const required = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']
  raw.transaction(() => {
    const rollout = raw
      .prepare(
        "insert into rollouts (name, app_id, required_scopes, status, created_by, created_at) values ('Cap table summary', ?, ?, 'active', 'operator:bench', ?)",
      )
      .run(app('production-v2'), required.join(' '), now).lastInsertRowid as number
    const user = raw.prepare(
      "insert into end_users (carta_user_id, email, status, created_at, updated_at) values (?, ?, 'connected', ?, ?)",
    )
    const member = raw.prepare(
      'insert into rollout_members (rollout_id, user_id, app_id, state, needs_action, missing_scopes, reason, authorized_at) values (?, ?, ?, ?, ?, ?, ?, ?)',
    )
    const miss = raw.prepare('insert into rollout_member_missing (rollout_id, scope, user_id) values (?, ?, ?)')
    const link = raw.prepare(
      "insert into reauth_links (rollout_id, user_id, nonce, issued_by, issued_at, expires_at, used_at) values (?, ?, ?, 'operator:bench', ?, ?, ?)",
    )
    for (let i = 1; i <= users; i++) {
      const id = user.run(`carta-${i}`, `user${i}@example.com`, now, now).lastInsertRowid as number
      const r = (i * 2654435761) % 100
      let missingScopes: string[] = []
      let state = 'covered'
      let appId: number | null = app('production-v2')
      if (r >= 88) {
        state = 'reconnect'
        appId = null
        missingScopes = required
      } else if (r >= 60) {
        state = 'lacking'
        appId = r >= 80 ? app('playground') : app('production-v1')
        missingScopes = r >= 80 ? required.slice(0, 2) : required.slice(0, 1)
      }
      member.run(
        rollout,
        id,
        appId,
        state,
        state === 'covered' ? 0 : 1,
        missingScopes.join(' '),
        state === 'covered' ? null : state === 'reconnect' ? 'no_active_grant' : 'missing_scopes',
        now - (i % 1000) * 60_000,
      )
      for (const s of missingScopes) miss.run(rollout, s, id)
      if (i % 20 === 0)
        link.run(
          rollout,
          id,
          `bench-${i}`,
          now - (i % 72) * 3_600_000,
          now + 14 * 86_400_000,
          i % 40 === 0 ? now - (i % 48) * 3_600_000 : null,
        )
      if (i % 200_000 === 0) process.stderr.write(`seeded ${i.toLocaleString('en')} users\n`)
    }
  })()
  raw.close()
  console.log(`Seeded ${users.toLocaleString('en')} users in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
