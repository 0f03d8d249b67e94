// Every bad input of the callback: each gets a clear page with the right status, a warn log
// line that does not contain the code, and no rows in the ledger.
import t, { type Test } from 'tap'
import { Agent } from '../helpers/browser-agent.js'
import { startTestApp } from '../helpers/app.js'
import { bearerToken, startFakeCarta } from '../helpers/fake-carta.js'
import { EMPTY_LEDGER, beginConnect, callback, ledgerCounts, warnLines } from './helpers.js'

const CODE = 'the-secret-authorization-code-4711'

async function setup(t: Test, env: Record<string, string> = {}) {
  const fake = await startFakeCarta(t)
  const app = await startTestApp(t, { env: fake.env({ CARTA_TIMEOUT_MS: '300', ...env }) })
  return { fake, app, agent: new Agent() }
}

/** The page, the log line and the empty ledger every failure must produce. */
async function assertRefused(
  t: Test,
  app: Awaited<ReturnType<typeof startTestApp>>,
  res: { status: number; text: string },
  status: number,
  text: RegExp,
  logReason?: RegExp,
  /** Refusals after the code exchange queue the tokens Carta issued for revocation (refresh + access). */
  queued = 0,
) {
  t.equal(res.status, status, `status ${status}`)
  t.match(res.text, text, 'page explains')
  t.match(res.text, /<html/, 'an HTML page')
  const warns = warnLines(app.logs)
  t.ok(warns.length > 0, 'a warn line was logged')
  if (logReason)
    t.ok(
      warns.some((l) => logReason.test(JSON.stringify(l))),
      `warn line says ${logReason}`,
    )
  t.notOk(
    app.logs.some((l) => JSON.stringify(l).includes(CODE)),
    'the code never appears in the log',
  )
  t.same(
    await ledgerCounts(app.db),
    { ...EMPTY_LEDGER, token_revocations: queued },
    queued ? 'nothing recorded but the revocation of the tokens Carta issued' : 'nothing recorded',
  )
}

t.test('missing state', async (t) => {
  const { app, agent } = await setup(t)
  await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE })
  await assertRefused(t, app, res, 400, /no state/)
})

t.test('unknown state', async (t) => {
  const { app, agent } = await setup(t)
  await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state: 'not-a-state-we-issued' })
  await assertRefused(t, app, res, 400, /no longer valid[\s\S]*Start again/, /unknown/)
})

t.test('replayed state', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  const first = await callback(agent, app.url, { code: CODE, state })
  t.equal(first.status, 303, 'first use succeeds')
  await app.db.deleteFrom('audit_events').execute()
  const before = await ledgerCounts(app.db)
  const again = await callback(agent, app.url, { code: CODE, state })
  t.equal(again.status, 400)
  t.match(again.text, /no longer valid/)
  t.ok(
    warnLines(app.logs).some((l) => l.reason === 'replayed'),
    'logged as replayed',
  )
  t.same(await ledgerCounts(app.db), before, 'replay wrote nothing')
  t.equal(fake.tokenRequests.length, 1, 'the code was exchanged once')
})

t.test('expired state (after 10 minutes)', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  ;(app.clock as import('../../src/clock.js').ManualClock).advance(10 * 60 * 1000 + 1)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 400, /no longer valid/, /expired/)
  t.equal(fake.tokenRequests.length, 0, 'no exchange attempted')
})

t.test('state from another browser session', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(new Agent(), app.url, { code: CODE, state })
  await assertRefused(t, app, res, 400, /another browser/, /other_session/)
  t.equal(fake.tokenRequests.length, 0)
  // The rightful browser can still finish: the other session did not burn the state.
  const ok = await callback(agent, app.url, { code: CODE, state })
  t.equal(ok.status, 303)
})

t.test('error=access_denied', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { error: 'access_denied', state })
  await assertRefused(t, app, res, 403, /You declined[\s\S]*href="\/carta\/connect\?app=fake-prod"/)
  t.equal(fake.tokenRequests.length, 0)
})

t.test('other error from Carta', async (t) => {
  const { app, agent } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { error: 'server_error', state })
  await assertRefused(t, app, res, 502, /server_error/)
})

t.test('missing code', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { state })
  await assertRefused(t, app, res, 400, /no authorization code/)
  t.equal(fake.tokenRequests.length, 0)
})

t.test('token endpoint: 400 invalid_grant', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'code expired' } })
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 400, /invalid_grant/)
})

t.test('token endpoint: other OAuth error (invalid_client)', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => ({ status: 400, body: { error: 'unauthorized_client' } })
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /unauthorized_client/)
})

t.test('token endpoint: 500', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => ({ status: 500, raw: '<h1>Internal Server Error</h1>', contentType: 'text/html' })
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /Carta is unavailable/, /500/)
})

t.test('token endpoint: 503 with an OAuth error body', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => ({ status: 503, body: { error: 'temporarily_unavailable' } })
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /Carta is unavailable/)
})

t.test('token endpoint: no answer (timeout)', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => 'hang'
  const { state } = await beginConnect(agent, app.url)
  const started = Date.now()
  const res = await callback(agent, app.url, { code: CODE, state })
  t.ok(Date.now() - started < 5000, 'the timeout fired (CARTA_TIMEOUT_MS=300)')
  await assertRefused(t, app, res, 504, /did not answer in time/)
})

t.test('token endpoint: Carta not reachable', async (t) => {
  const { app, agent, fake } = await setup(t)
  const { state } = await beginConnect(agent, app.url)
  await fake.close()
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /Carta is unavailable/)
})

for (const [name, reply] of [
  ['not JSON', { raw: '{"access_token": "abc", ', contentType: 'application/json' }],
  ['HTML', { raw: '<html>hello</html>', contentType: 'text/html' }],
  ['no access_token', { body: { token_type: 'Bearer', expires_in: 3600 } }],
  ['token_type mac', { body: { access_token: 'abc', token_type: 'mac' } }],
  ['no token_type', { body: { access_token: 'abc' } }],
  ['expires_in not a number', { body: { access_token: 'abc', token_type: 'Bearer', expires_in: 'soon' } }],
  ['scope not a string', { body: { access_token: 'abc', token_type: 'Bearer', scope: ['read_user_info'] } }],
] as const) {
  t.test(`token endpoint: malformed answer (${name})`, async (t) => {
    const { app, agent, fake } = await setup(t)
    fake.token = () => reply
    const { state } = await beginConnect(agent, app.url)
    const res = await callback(agent, app.url, { code: CODE, state })
    await assertRefused(t, app, res, 502, /could not read/)
  })
}

t.test('a granted scope that was not requested', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.token = () => bearerToken('read_user_info readwrite_everything')
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /did not ask for[\s\S]*readwrite_everything/, /readwrite_everything/, 2)
  t.equal(fake.apiRequests.length, 0, 'the user endpoint was not called')
})

t.test('user endpoint fails after the exchange', async (t) => {
  const { app, agent, fake } = await setup(t)
  fake.user = () => ({ status: 500, raw: 'oops', contentType: 'text/plain' })
  const { state } = await beginConnect(agent, app.url)
  const res = await callback(agent, app.url, { code: CODE, state })
  await assertRefused(t, app, res, 502, /did not tell us who you are/, undefined, 2)
})

t.test('unknown app', async (t) => {
  const { app, agent } = await setup(t)
  const res = await agent.get(`${app.url}/carta/connect?app=nope`)
  await assertRefused(t, app, res, 404, /Unknown Carta app/)
  t.equal(
    Number(
      (
        await app.db
          .selectFrom('oauth_states')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    0,
    'no state stored',
  )
})

t.test('retired app', async (t) => {
  const { app, agent } = await setup(t)
  const res = await agent.get(`${app.url}/carta/connect?app=fake-old`)
  await assertRefused(t, app, res, 409, /retired/)
})

t.test('rate limit on /carta/*', async (t) => {
  const { app, agent } = await setup(t, { RATE_LIMIT_OAUTH_PER_MINUTE: '3' })
  for (let i = 0; i < 3; i++) t.equal((await agent.get(`${app.url}/carta/callback`)).status, 400)
  const res = await agent.get(`${app.url}/carta/callback`)
  t.equal(res.status, 429)
  t.match(res.text, /Too many requests/)
})
