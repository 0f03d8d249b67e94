// The whole connect flow through a browser-like agent against the embedded sandbox Carta:
// sign in as a demo user, consent (all or some scopes), callback, home page, database.
import { readFileSync, existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import { readTokens } from '../../src/grants/tokens.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { type TestApp, startTestApp } from '../helpers/app.js'
import { beginConnect } from './helpers.js'

const ALL_V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']

/** Drives the sandbox from /carta/connect to our callback and back to the home page. */
async function connectViaSandbox(
  t: Test,
  app: TestApp,
  agent: Agent,
  options: { appKey?: string; user: string; scopes?: string[]; decision?: 'allow' | 'deny' },
) {
  const { authorizeUrl } = await beginConnect(agent, app.url, options.appKey)
  t.equal(
    authorizeUrl.origin + authorizeUrl.pathname,
    `${app.url}/sandbox/o/authorize/`,
    'sent to the sandbox authorize endpoint',
  )
  t.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256')
  let page = await agent.get(authorizeUrl.href)
  if (/name="user_id"/.test(page.text)) {
    const signedIn = await agent.post(`${app.url}/sandbox/login`, {
      next: hiddenField(page.text, 'next'),
      user_id: options.user,
    })
    t.equal(signedIn.status, 303, 'signed in to the sandbox')
    page = await agent.follow(signedIn)
  }
  t.equal(page.status, 200, 'consent page')
  t.match(page.text, /wants access to your Carta account/)
  const scopes = options.scopes ?? [...page.text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!)
  const decided = await agent.post(`${app.url}/sandbox/o/authorize/`, {
    request_id: hiddenField(page.text, 'request_id'),
    scope: scopes,
    decision: options.decision ?? 'allow',
  })
  t.ok(decided.location?.startsWith(`${app.url}/carta/callback?`), 'sandbox redirects to our callback')
  return agent.get(decided.location!)
}

async function activeGrants(app: TestApp) {
  return app.db.selectFrom('grants').selectAll().where('status', '=', 'active').execute()
}

t.test('partial grant: the subset is recorded as reported, shown on the home page', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  const done = await connectViaSandbox(t, app, agent, {
    appKey: 'production-v2',
    user: 'cu_1002',
    scopes: ['read_user_info', 'read_issuer_info'],
  })
  t.equal(done.status, 303)
  t.equal(done.location, '/')

  const [grant, ...others] = await activeGrants(app)
  t.equal(others.length, 0, 'one active grant')
  t.equal(grant!.granted_scopes, 'read_issuer_info read_user_info')
  t.equal(grant!.requested_scopes, ALL_V2.join(' '))
  t.equal(grant!.scopes_source, 'reported')
  const rows = await app.db
    .selectFrom('grant_scopes')
    .select('scope')
    .where('grant_id', '=', grant!.id)
    .orderBy('scope')
    .execute()
  t.same(
    rows.map((r) => r.scope),
    ['read_issuer_info', 'read_user_info'],
    'normalized scope rows',
  )
  const user = await app.db.selectFrom('end_users').selectAll().executeTakeFirstOrThrow()
  t.equal(user.carta_user_id, 'cu_1002')
  t.equal(user.email, 'ben.hartley@harbor.example')
  t.equal(user.name, 'Ben Hartley')
  t.equal(user.active_grant_id, grant!.id)
  const audit = await app.db
    .selectFrom('audit_events')
    .select(['type', 'details'])
    .where('type', '=', 'grant.created')
    .execute()
  t.equal(audit.length, 1, 'grant.created audited')
  t.same(JSON.parse(audit[0]!.details).granted, 'read_issuer_info read_user_info')

  const home = await agent.get(`${app.url}/`)
  t.equal(home.status, 200)
  t.match(home.text, /Ben Hartley/)
  t.match(home.text, /cu_1002/)
  t.match(home.text, /Production v2/)
  // Each list item carries its scope id; the page shows plain words first (views/home.eta).
  const listed = (id: string) =>
    [
      ...(new RegExp(`<ul[^>]*id="${id}"[^>]*>([\\s\\S]*?)</ul>`).exec(home.text)?.[1] ?? '').matchAll(
        /data-scope="([^"]+)"/g,
      ),
    ]
      .map((m) => m[1])
      .sort()
  t.same(listed('granted-scopes'), ['read_issuer_info', 'read_user_info'], 'granted: exactly these')
  t.same(listed('missing-scopes'), ['read_issuer_capitalizationtablesummary'], 'the refused scope is listed apart')
  t.match(home.text, 'See the list of companies you have access to on Carta', 'in plain words')
  t.match(home.text, /data-source="reported"/)
  t.match(home.text, /Carta confirmed exactly these permissions/)
  t.match(home.text, /Harbor Analytics Corp\./, 'issuers from /v1alpha1/issuers')
  t.match(home.text, /Lumen Robotics, Inc\./)
})

t.test('full grant: no scope in the token response, recorded as assumed', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  const done = await connectViaSandbox(t, app, agent, { user: 'cu_1001' })
  t.equal(done.status, 303)
  const [grant] = await activeGrants(app)
  t.equal(grant!.scopes_source, 'assumed')
  t.equal(grant!.granted_scopes, ALL_V2.join(' '), 'current production app (v2) scopes')
  const home = await agent.get(`${app.url}/`)
  t.match(home.text, /data-source="assumed"/)
  t.match(home.text, /Carta confirmed the permissions you approved/, 'said plainly, without a warning')
  t.notMatch(home.text, /RFC|badge warn|notice warn/)
  t.match(home.text, /Lumen Robotics/)
})

t.test('without read_user_info: identity not shared, issuers still listed', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  await connectViaSandbox(t, app, agent, { appKey: 'production-v1', user: 'cu_1003', scopes: ['read_issuer_info'] })
  const user = await app.db.selectFrom('end_users').selectAll().executeTakeFirstOrThrow()
  t.equal(user.carta_user_id, null)
  t.ok(user.local_key, 'identified by a local key bound to the session')
  const home = await agent.get(`${app.url}/`)
  t.match(home.text, /Identity not shared/)
  t.match(home.text, /Quill &amp; Ledger Software LLC/)
  // Reconnecting from the same browser keeps the same local user.
  await connectViaSandbox(t, app, agent, { appKey: 'production-v1', user: 'cu_1003', scopes: ['read_issuer_info'] })
  t.equal(
    Number(
      (
        await app.db
          .selectFrom('end_users')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    1,
  )
})

t.test('without read_issuer_info: the home page says so and offers reconnecting', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  await connectViaSandbox(t, app, agent, { user: 'cu_1004', scopes: ['read_user_info'] })
  const home = await agent.get(`${app.url}/`)
  t.match(home.text, /not allowed Scope Ledger to see your companies/)
  t.match(home.text, /href="\/carta\/connect\?app=production-v2">Connect again/)
})

t.test('deny at the sandbox: 403 page, nothing recorded', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  const res = await connectViaSandbox(t, app, agent, { user: 'cu_1001', decision: 'deny' })
  t.equal(res.status, 403)
  t.match(res.text, /You declined/)
  t.equal((await app.db.selectFrom('grants').selectAll().execute()).length, 0)
})

t.test('reconnect supersedes the previous grant and queues its tokens for revocation', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  await connectViaSandbox(t, app, agent, { appKey: 'production-v1', user: 'cu_1002' })
  const [first] = await activeGrants(app)
  const firstTokens = await readTokens(app.db, app.app.deps.cipher, first!.id)
  t.ok(firstTokens?.refreshToken, 'first grant has tokens')

  // Later the user reconnects (e.g. a new app with more scopes) from another browser.
  const second = await connectViaSandbox(t, app, new Agent(), { appKey: 'production-v2', user: 'cu_1002' })
  t.equal(second.status, 303)
  const grants = await app.db.selectFrom('grants').selectAll().orderBy('id').execute()
  t.equal(grants.length, 2)
  t.equal(grants[0]!.status, 'superseded')
  t.equal(grants[0]!.superseded_by, grants[1]!.id)
  t.ok(grants[0]!.ended_at)
  t.equal(grants[1]!.status, 'active')
  t.equal((await activeGrants(app)).length, 1, 'exactly one active grant')
  const users = await app.db.selectFrom('end_users').selectAll().execute()
  t.equal(users.length, 1, 'same Carta user, same end user')
  t.equal(users[0]!.active_grant_id, grants[1]!.id)
  const queued = await app.db
    .selectFrom('token_revocations')
    .selectAll()
    .where('grant_id', '=', grants[0]!.id)
    .orderBy('id')
    .execute()
  t.same(
    queued.map((q) => [q.token_type_hint, q.status]),
    [
      ['refresh_token', 'pending'],
      ['access_token', 'pending'],
    ],
    'old tokens queued for revocation',
  )
  t.equal(
    app.app.deps.cipher.open({ keyId: queued[0]!.key_id, value: queued[0]!.token }),
    firstTokens!.refreshToken,
    'the queued value is the old refresh token, sealed',
  )
  t.equal(
    await readTokens(app.db, app.app.deps.cipher, grants[0]!.id),
    undefined,
    'old live tokens removed from the store',
  )
  const types = (await app.db.selectFrom('audit_events').select('type').orderBy('id').execute()).map((r) => r.type)
  t.same(
    types.filter((x) => x.startsWith('grant.')),
    ['grant.created', 'grant.superseded', 'grant.created'],
  )
})

t.test('token values never appear in clear in the database files', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  await connectViaSandbox(t, app, agent, { user: 'cu_1005' })
  await connectViaSandbox(t, app, agent, { user: 'cu_1005', scopes: ['read_user_info'] })
  const values: string[] = []
  for (const grant of await app.db.selectFrom('grants').select('id').execute()) {
    const tokens = await readTokens(app.db, app.app.deps.cipher, grant.id)
    if (tokens) values.push(tokens.accessToken, tokens.refreshToken!)
  }
  for (const row of await app.db.selectFrom('token_revocations').selectAll().execute())
    values.push(app.app.deps.cipher.open({ keyId: row.key_id, value: row.token }))
  t.equal(values.length, 4, 'two live and two queued tokens')
  // They are the values the sandbox issued: the live access token works against its API.
  const live = await readTokens(app.db, app.app.deps.cipher, (await activeGrants(app))[0]!.id)
  const me = await fetch(`${app.url}/sandbox/v1alpha1/user`, {
    headers: { authorization: `Bearer ${live!.accessToken}` },
  })
  t.equal(me.status, 200, 'decrypted token is accepted by the sandbox')
  if (app.config.database.kind !== 'sqlite') return t.end()
  const path = app.config.database.path
  const bytes = Buffer.concat([path, `${path}-wal`].filter(existsSync).map((p) => readFileSync(p)))
  t.ok(bytes.length > 0)
  for (const value of values) {
    t.equal(bytes.indexOf(value), -1, 'token absent from the db/-wal bytes')
    t.equal(bytes.indexOf(Buffer.from(value).toString('base64')), -1, 'not even base64-encoded')
  }
  t.notOk(
    app.logs.some((l) => values.some((v) => JSON.stringify(l).includes(v))),
    'nor in the log',
  )
})

t.test('the session id changes when the callback binds the browser to a user (no session fixation)', async (t) => {
  const app = await startTestApp(t)
  const agent = new Agent()
  await beginConnect(agent, app.url, 'production-v2')
  const before = agent.cookieValue(app.url, 'sl_session')
  t.ok(before, 'a session exists before Carta is visited (it holds the state binding)')
  // Start again from the same browser and finish the flow this time.
  const done = await connectViaSandbox(t, app, agent, { appKey: 'production-v2', user: 'cu_1002' })
  t.equal(done.status, 303)
  const after = agent.cookieValue(app.url, 'sl_session')
  t.ok(after)
  t.not(after!.split('.')[0], before!.split('.')[0], 'a new session id after the callback')
  const stale = await app.db
    .selectFrom('sessions')
    .select('sid')
    .where('sid', '=', before!.split('.')[0]!)
    .executeTakeFirst()
  t.notOk(stale, 'the pre-callback session is gone from the store')
  const home = await agent.get(`${app.url}/`)
  t.match(home.text, /Ben Hartley/, 'the new session is the connected user')
})
