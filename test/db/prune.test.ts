// Expired sessions, old OAuth states and ended rate-limit windows are deleted by scheduled jobs
// (`sessions`, `oauth-states`), in bounded batches: a pass deletes at most batch × maxBatches rows
// and the next pass continues. Runs on both engines (TEST_DATABASE_URL for PostgreSQL).
import t from 'tap'
import { PRUNE_BATCH, PRUNE_MAX_BATCHES, pruneInBatches } from '../../src/db/prune.js'
import { DAY_MS } from '../../src/time.js'
import { startTestApp } from '../helpers/app.js'

async function count(db: Awaited<ReturnType<typeof startTestApp>>['db'], table: 'sessions' | 'oauth_states') {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

t.test('the scheduled jobs delete expired sessions and old states in bounded batches', async (t) => {
  const app = await startTestApp(t)
  const now = app.clock.now()
  const expired = 2_500
  for (let i = 0; i < expired; i += 500)
    await app.db
      .insertInto('sessions')
      .values(
        Array.from({ length: 500 }, (_, j) => ({ sid: `old-${i + j}`, data: '{}', expires_at: now - 1000 - i - j })),
      )
      .execute()
  await app.db
    .insertInto('sessions')
    .values([
      { sid: 'live', data: '{}', expires_at: now + DAY_MS },
      { sid: 'edge', data: '{}', expires_at: now },
    ])
    .execute()
  const appRow = await app.db.selectFrom('oauth_apps').select('id').executeTakeFirstOrThrow()
  const state = (name: string, expiresAt: number) => ({
    state: name,
    session_id: 's',
    app_id: appRow.id,
    code_verifier: 'v',
    requested_scopes: 'read_user_info',
    redirect_uri: 'http://127.0.0.1/carta/callback',
    link_id: null,
    expected_user_id: null,
    return_to: null,
    created_at: expiresAt - 600_000,
    expires_at: expiresAt,
    used_at: null,
  })
  await app.db
    .insertInto('oauth_states')
    .values([state('ancient', now - 2 * DAY_MS), state('recent', now - 60_000), state('open', now + 60_000)])
    .execute()

  t.equal(
    await pruneInBatches(app.db, 'sessions', now + 1, { batch: 1_000, maxBatches: 2 }),
    2_000,
    'one call deletes at most batch × maxBatches rows',
  )
  t.equal(await count(app.db, 'sessions'), 502)

  const jobs = app.app.jobs as unknown as { run(name: string): Promise<unknown> }
  t.same(await jobs.run('sessions'), { sessions: 501, rateLimits: 0 }, 'the sessions job deletes the rest')
  t.same(
    (await app.db.selectFrom('sessions').select('sid').execute()).map((r) => r.sid),
    ['live'],
    'a live session stays; one expiring now is gone (the store already refuses it)',
  )
  t.equal(await jobs.run('oauth-states'), 1, 'the oauth-states job deletes states past their diagnosis day')
  t.same(
    (await app.db.selectFrom('oauth_states').select('state').orderBy('state').execute()).map((r) => r.state),
    ['open', 'recent'],
  )
  t.ok(PRUNE_BATCH * PRUNE_MAX_BATCHES <= 50_000, 'a pass is bounded')
})
