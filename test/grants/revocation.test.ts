// Revocation queue: superseded tokens are revoked at Carta (RFC 7009); a failure is
// retried with backoff and visible; an operator can revoke a user's grant.
import t from 'tap'
import { backoffMs, MAX_ATTEMPTS, processDueRevocations } from '../../src/grants/revocation.js'
import { readTokens } from '../../src/grants/tokens.js'
import type { ManualClock } from '../../src/clock.js'
import { startTestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { connectUser, sandboxControl, sandboxStats, signInOperator } from '../helpers/connect.js'

t.test('backoff doubles from one minute, capped at six hours, with jitter', async (t) => {
  const none = () => 0
  t.equal(
    backoffMs(1, (max) => max / 2),
    60_000,
  )
  t.equal(
    backoffMs(2, (max) => max / 2),
    120_000,
  )
  t.equal(backoffMs(3, none), 240_000 * 0.8)
  t.equal(
    backoffMs(30, (max) => max / 2),
    6 * 3600_000,
  )
  const samples = new Set(Array.from({ length: 20 }, () => backoffMs(4)))
  t.ok(samples.size > 1, 'jitter spreads retries')
  for (const s of samples) t.ok(s >= 480_000 * 0.8 && s <= 480_000 * 1.2)
})

t.test('a superseded grant is revoked at Carta: fails, is retried after the backoff, then succeeds', async (t) => {
  const app = await startTestApp(t)
  const clock = app.clock as ManualClock
  const first = await connectUser(app)
  const oldTokens = await readTokens(app.db, app.app.deps.cipher, first.grantId)
  // Reconnecting supersedes the first grant; the callback queues its tokens for revocation.
  const second = await connectUser(app, { agent: first.agent })
  t.not(second.grantId, first.grantId)
  const queued = await app.db
    .selectFrom('token_revocations')
    .selectAll()
    .where('grant_id', '=', first.grantId)
    .execute()
  t.ok(queued.length >= 1, 'revocation rows queued')
  t.ok(queued.every((r) => r.status === 'pending'))

  await sandboxControl(app, 'fail', { endpoint: 'revoke', status: 503, times: queued.length })
  const deps = { ...app.app.deps }
  const run1 = await processDueRevocations(deps)
  t.same(run1, { sent: 0, failed: queued.length, skipped: 0 })
  const failed = await app.db
    .selectFrom('token_revocations')
    .selectAll()
    .where('grant_id', '=', first.grantId)
    .execute()
  for (const row of failed) {
    t.equal(row.status, 'pending')
    t.equal(row.attempts, 1)
    t.ok(row.next_attempt_at >= clock.now() + 48_000, 'next attempt after the backoff')
    t.match(row.last_error, /unavailable/)
    t.notMatch(row.last_error, oldTokens!.refreshToken!, 'no token in last_error')
    t.equal(row.lock_until, null)
  }
  t.same(await processDueRevocations(deps), { sent: 0, failed: 0, skipped: 0 }, 'nothing due before the backoff')

  // The apps page shows them as pending.
  const operator = await signInOperator(app)
  const appsPage = await operator.get(`${app.url}/admin/apps`)
  t.equal(appsPage.status, 200)
  t.match(appsPage.text, new RegExp(`${queued.length} revocation pending`))

  clock.advance(2 * 60_000)
  const stats0 = await sandboxStats(app)
  const run2 = await processDueRevocations(deps)
  t.same(run2, { sent: queued.length, failed: 0, skipped: 0 })
  t.equal((await sandboxStats(app)).revocations - stats0.revocations, queued.length, 'sent to the sandbox')
  const done = await app.db.selectFrom('token_revocations').selectAll().where('grant_id', '=', first.grantId).execute()
  t.ok(
    done.every((r) => r.status === 'done' && r.done_at === clock.now() && r.token === ''),
    'done, ciphertext dropped',
  )
  const events = await app.db
    .selectFrom('audit_events')
    .select(['type', 'details'])
    .where('type', '=', 'token.revoked')
    .where('grant_id', '=', first.grantId)
    .execute()
  t.equal(events.length, queued.length)
  // The old refresh token is dead at the sandbox.
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const res = await fetch(`${app.url}/sandbox/o/access_token/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${v2.clientId}:${v2.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: oldTokens!.refreshToken! }),
  })
  t.equal(res.status, 400, 'revoked refresh token refused')
})

t.test('two workers never send the same row twice', async (t) => {
  const app = await startTestApp(t)
  const first = await connectUser(app)
  await connectUser(app, { agent: first.agent })
  const stats0 = await sandboxStats(app)
  const deps = { ...app.app.deps }
  const [a, b] = await Promise.all([processDueRevocations(deps), processDueRevocations(deps)])
  const rows = await app.db.selectFrom('token_revocations').select(['status']).execute()
  t.equal(a.sent + b.sent, rows.length, 'each row sent once')
  t.equal((await sandboxStats(app)).revocations - stats0.revocations, rows.length)
})

t.test(`after ${MAX_ATTEMPTS} failures a revocation is marked failed and shown`, async (t) => {
  const app = await startTestApp(t)
  const clock = app.clock as ManualClock
  const first = await connectUser(app)
  await connectUser(app, { agent: first.agent })
  const count = (await app.db.selectFrom('token_revocations').select('id').execute()).length
  await sandboxControl(app, 'fail', { endpoint: 'revoke', status: 500, times: count * MAX_ATTEMPTS })
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    await processDueRevocations({ ...app.app.deps })
    // Straight to the next due time (sessions, which expire after a day, stay valid).
    const next = await app.db
      .selectFrom('token_revocations')
      .select((eb) => eb.fn.max('next_attempt_at').as('at'))
      .executeTakeFirstOrThrow()
    clock.set(Math.max(clock.now(), Number(next.at)))
  }
  const rows = await app.db.selectFrom('token_revocations').selectAll().execute()
  t.ok(rows.every((r) => r.status === 'failed' && r.attempts === MAX_ATTEMPTS))
  t.equal(
    (await app.db.selectFrom('audit_events').select('id').where('type', '=', 'token.revocation_failed').execute())
      .length,
    count,
  )
  const operator = await signInOperator(app)
  t.match((await operator.get(`${app.url}/admin/apps`)).text, new RegExp(`${count} revocation failed`))
})

t.test('operator revokes a user: confirm page, CSRF, revoked at Carta, user needs reconnect', async (t) => {
  const app = await startTestApp(t)
  const { agent, userId, grantId } = await connectUser(app)
  const tokens = await readTokens(app.db, app.app.deps.cipher, grantId)
  const operator = await signInOperator(app)

  const anonymous = await agent.get(`${app.url}/admin/users/${userId}/revoke`)
  t.equal(anonymous.status, 303, 'end users are sent to the operator sign-in')
  const confirm = await operator.get(`${app.url}/admin/users/${userId}/revoke`)
  t.equal(confirm.status, 200)
  t.match(confirm.text, /Revoke Carta access of Ada Okafor/)
  t.notMatch(confirm.text, tokens!.accessToken)

  const noCsrf = await operator.post(`${app.url}/admin/users/${userId}/revoke`, {})
  t.equal(noCsrf.status, 403)
  t.equal(
    (await app.db.selectFrom('grants').select('status').where('id', '=', grantId).executeTakeFirstOrThrow()).status,
    'active',
    'nothing changed without CSRF',
  )

  const stats0 = await sandboxStats(app)
  const done = await operator.post(`${app.url}/admin/users/${userId}/revoke`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
  })
  t.equal(done.status, 200)
  t.match(done.text, /Carta confirmed the revocation/)
  t.ok((await sandboxStats(app)).revocations - stats0.revocations >= 1, 'sent to Carta at once')
  const grant = await app.db
    .selectFrom('grants')
    .select(['status', 'status_reason'])
    .where('id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.equal(grant.status, 'revoked')
  t.match(grant.status_reason, /operator:ops/)
  t.equal(
    (await app.db.selectFrom('end_users').select('status').where('id', '=', userId).executeTakeFirstOrThrow()).status,
    'needs_reconnect',
  )
  t.equal(
    (await app.db.selectFrom('grant_tokens').select('grant_id').where('grant_id', '=', grantId).execute()).length,
    0,
    'stored tokens deleted',
  )
  const event = await app.db
    .selectFrom('audit_events')
    .selectAll()
    .where('type', '=', 'grant.revoked_by_operator')
    .executeTakeFirstOrThrow()
  t.equal(event.actor, 'operator:ops')
  t.equal(event.user_id, userId)

  const feature = await agent.get(`${app.url}/features/issuers`)
  t.equal(feature.status, 409, 'the user is asked to reconnect')
  t.match(feature.text, /Reconnect to Carta/)

  const again = await operator.post(`${app.url}/admin/users/${userId}/revoke`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
  })
  t.equal(again.status, 409, 'revoking twice: a clear page')
  t.match(again.text, /Nothing to revoke/)
  const missing = await operator.get(`${app.url}/admin/users/999999/revoke`)
  t.equal(missing.status, 404)
})

t.test('operator revoke while Carta is down: grant revoked here, revocation stays queued', async (t) => {
  const app = await startTestApp(t)
  const { userId, grantId } = await connectUser(app)
  const operator = await signInOperator(app)
  const confirm = await operator.get(`${app.url}/admin/users/${userId}/revoke`)
  await sandboxControl(app, 'fail', { endpoint: 'revoke', status: 503, times: 10 })
  const done = await operator.post(`${app.url}/admin/users/${userId}/revoke`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
  })
  t.equal(done.status, 200)
  t.match(done.text, /retried automatically/)
  t.match(done.text, /revocation pending/)
  const rows = await app.db
    .selectFrom('token_revocations')
    .select(['status', 'attempts'])
    .where('grant_id', '=', grantId)
    .execute()
  t.ok(rows.length >= 1 && rows.every((r) => r.status === 'pending' && r.attempts === 1))
})
