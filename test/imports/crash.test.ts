// A kill -9 in the middle of `import-grants` leaves every row fully recorded or not at all (its
// grant, tokens, audit event, rollout membership and the run's counters together), and running the
// command again finishes the job; rollout counters equal a recount throughout.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { importGrantsCommand } from '../../src/cli/import-grants.js'
import { openDatabase } from '../../src/db/index.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { addGrant, addUser } from '../helpers/ledger.js'
import { createRollout } from '../links/fixtures.js'

// The kill lands after the first batch of 500; fewer rows on PostgreSQL, where each costs round trips.
const ROWS = process.env.TEST_DATABASE_URL ? 700 : 2000
const EXISTING = 20
const main = join(import.meta.dirname, '../../src/cli/main.ts')

function childEnv(app: TestApp): Record<string, string> {
  const db = app.config.database
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    DATA_DIR: app.dataDir,
    PUBLIC_URL: app.url,
    LOG_LEVEL: 'silent',
    ...(db.kind === 'sqlite'
      ? { DATABASE_PATH: db.path }
      : { DATABASE_URL: db.url, ...(db.searchPath ? { DATABASE_SEARCH_PATH: db.searchPath } : {}) }),
  }
}

async function countsExact(app: TestApp, rolloutId: number) {
  const nonZero = (m: Map<string, number>) => Object.fromEntries([...m].filter(([, n]) => n !== 0))
  return {
    stored: nonZero(await storedCounts(app.db, rolloutId)),
    exact: nonZero(await exactCounts(app.db, rolloutId)),
  }
}

/** Every imported grant is whole: tokens, its audit event, one member row per user and rollout. */
async function assertWhole(t: Test, app: TestApp, rolloutId: number, label: string) {
  const grants = await app.db
    .selectFrom('grants')
    .select(['id', 'user_id'])
    .where('import_run_id', 'is not', null)
    .execute()
  const withTokens = await app.db
    .selectFrom('grant_tokens')
    .innerJoin('grants', 'grants.id', 'grant_tokens.grant_id')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('grants.import_run_id', 'is not', null)
    .executeTakeFirstOrThrow()
  t.equal(Number(withTokens.n), grants.length, `${label}: every imported grant has its tokens`)
  const audited = await app.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('type', '=', 'grant.created')
    .where('actor', '=', 'cli')
    .executeTakeFirstOrThrow()
  t.equal(Number(audited.n), grants.length, `${label}: one audit event per imported grant`)
  const users = await app.db
    .selectFrom('end_users')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  const members = await app.db
    .selectFrom('rollout_members')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('rollout_id', '=', rolloutId)
    .executeTakeFirstOrThrow()
  t.equal(Number(members.n), Number(users.n), `${label}: every user is a member of the rollout`)
  const runs = await app.db.selectFrom('import_runs').selectAll().execute()
  const counted = runs.reduce((n, r) => n + Number(r.created) + Number(r.superseded), 0)
  t.equal(counted, grants.length, `${label}: the runs' counters match the grants written`)
  const counts = await countsExact(app, rolloutId)
  t.same(counts.stored, counts.exact, `${label}: rollout counters equal a recount`)
}

t.test('kill -9 mid-import, then re-run', async (t) => {
  const app = await startTestApp(t)
  const now = app.clock.now()
  const rollout = await createRollout(app.db, { now })
  // Some users already connected long ago: their grants are superseded by the import.
  for (let i = 0; i < EXISTING; i++) {
    const user = await addUser(app.db, now, { carta: `crash-${i * 7}` })
    await addGrant(app.app.deps, user, 'production-v1', ['read_user_info'], now - 86_400_000 * 30)
  }
  const lines: string[] = []
  for (let i = 0; i < ROWS; i++) {
    lines.push(
      JSON.stringify({
        carta_user_id: `crash-${i}`,
        client_id: i % 3 ? 'scope-ledger-production-v2' : 'scope-ledger-production-v1',
        email: `crash-${i}@example.com`,
        ...(i % 2 ? { scopes: i % 3 ? rollout.scopes : ['read_user_info'] } : {}),
        access_token: `at-${i}`,
        refresh_token: `rt-${i}`,
      }),
    )
  }
  const file = join(app.dataDir, 'crash.jsonl')
  writeFileSync(file, `${lines.join('\n')}\n`)

  const child = spawn(process.execPath, ['--import=tsx', main, 'import-grants', file], {
    env: childEnv(app),
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
  // Kill as soon as the first batches are in.
  for (;;) {
    const run = await app.db.selectFrom('import_runs').select(['created', 'superseded']).executeTakeFirst()
    if (run && Number(run.created) + Number(run.superseded) >= 500) break
    await new Promise((r) => setTimeout(r, 10))
  }
  child.kill('SIGKILL')
  t.equal(await exited, 'SIGKILL', 'the import was killed')
  const killed = await app.db.selectFrom('import_runs').selectAll().executeTakeFirstOrThrow()
  t.equal(killed.status, 'running', 'the killed run never finished')
  const partial = await app.db.selectFrom('grants').select('id').where('import_run_id', 'is not', null).execute()
  t.ok(partial.length >= 500 && partial.length < ROWS, `part of the file was imported (${partial.length} rows)`)
  await assertWhole(t, app, rollout.id, 'after the kill')

  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const out: string[] = []
  const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => true } }
  t.equal(await importGrantsCommand([file], open, io), 0, 're-running finishes the job')
  const summary = /(\d+) created, (\d+) superseded, (\d+) unchanged, 0 rejected/.exec(out.join(''))
  t.ok(summary, 'summary printed')
  const [created, superseded, unchanged] = summary!.slice(1).map(Number) as [number, number, number]
  t.equal(unchanged, partial.length, 'rows the killed run recorded are unchanged')
  t.equal(created + superseded + unchanged, ROWS)
  const imported = await app.db.selectFrom('grants').select('user_id').where('import_run_id', 'is not', null).execute()
  t.equal(new Set(imported.map((g) => g.user_id)).size, ROWS, 'every row imported once')
  t.equal(
    (await app.db.selectFrom('grants').select('id').where('status', '=', 'superseded').execute()).length,
    EXISTING,
    'each older connection superseded once',
  )
  await assertWhole(t, app, rollout.id, 'after the re-run')
})
