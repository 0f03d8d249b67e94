// Operator single sign-on end to end against oidc-provider (test/helpers/oidc-idp.ts): discovery,
// code + PKCE + nonce, the ID token validated, the session regenerated; and the refusals — an ID
// token for another audience, an expired one, a domain not allowed, a replayed callback.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../../../src/config.js'
import { startTestApp, type TestApp } from '../../../helpers/app.js'
import { Agent } from '../../../helpers/browser-agent.js'
import { OPERATOR_PASSWORD } from '../../../helpers/ledger.js'
import { startOperatorIdp } from '../../../helpers/oidc-idp.js'
import { createOperator } from '../../../../src/admin/operators.js'

async function setup(t: Test, env: Record<string, string> = {}, claimsIn: 'id-token' | 'userinfo' = 'id-token') {
  const idp = await startOperatorIdp(t)
  idp.claimsIn = claimsIn
  const ctx = await startTestApp(t, { env: idp.env(env) })
  idp.configure(`${ctx.url}/admin/sso/callback`)
  return { idp, ctx }
}

/** /admin/sso/start → the provider (login, consent answered) → the URL of our callback, not yet visited. */
async function throughProvider(t: Test, agent: Agent, ctx: TestApp, next = '/admin'): Promise<string> {
  const start = await agent.get(`${ctx.url}/admin/sso/start?next=${encodeURIComponent(next)}`)
  t.equal(start.status, 303, start.text.slice(0, 300))
  const authorize = new URL(start.location!)
  t.equal(authorize.searchParams.get('code_challenge_method'), 'S256', 'PKCE')
  t.ok(authorize.searchParams.get('nonce'), 'a nonce')
  t.ok(authorize.searchParams.get('state'), 'a state')
  let res = await agent.get(authorize.href)
  for (let hops = 0; hops < 12 && res.location && !res.location.startsWith(`${ctx.url}/admin/sso/callback`); hops++)
    res = await agent.get(new URL(res.location, res.url).href)
  t.match(res.location ?? '', `${ctx.url}/admin/sso/callback?`, 'the provider sends the browser back')
  return res.location!
}

async function refusals(ctx: TestApp) {
  return ctx.db.selectFrom('audit_events').select('details').where('type', '=', 'operator.sign_in_refused').execute()
}

t.test('sign-in: a new session id, an account with the default role, and a replay refused', async (t) => {
  const { idp, ctx } = await setup(t)
  const agent = new Agent()
  const page = await agent.get(`${ctx.url}/admin/sign-in?next=/admin/apps`)
  t.match(page.text, 'href="/admin/sso/start?next=%2Fadmin%2Fapps"', 'the sign-in page offers single sign-on')
  t.match(page.text, 'name="password"', 'and the password form, not switched off')

  const callback = await throughProvider(t, agent, ctx, '/admin/apps')
  const before = agent.cookieValue(ctx.url, 'sl_session')
  const done = await agent.get(callback)
  t.equal(done.status, 303, done.text.slice(0, 400))
  t.equal(done.location, '/admin/apps', 'back to the page asked for')
  t.not(agent.cookieValue(ctx.url, 'sl_session'), before, 'a new session id at sign-in')
  const apps = await agent.get(`${ctx.url}/admin/apps`)
  t.equal(apps.status, 200)
  t.match(apps.text, 'Sign out ada@example.com')
  t.notMatch(apps.text, '/retire"', 'a viewer (the default role) is offered no retire button')

  const row = await ctx.db.selectFrom('operators').selectAll().executeTakeFirstOrThrow()
  t.match(row, { username: 'ada@example.com', role: 'viewer', oidc_issuer: idp.url, oidc_subject: 'emp-1001' })
  t.equal(row.password_hash, '!', 'no password signs in to a single sign-on account')
  t.ok(row.last_sign_in_at)
  t.ok(ctx.logs.some((l) => l.msg === 'operator signed in' && l.via === 'sso'))
  const code = new URL(callback).searchParams.get('code')!
  t.notOk(JSON.stringify(ctx.logs).includes(code), 'the authorization code never reaches the log')

  // The same callback again, in the same browser and in another one: nothing pending, 400.
  const again = await agent.get(callback)
  t.equal(again.status, 400)
  t.match(again.text, 'Sign-in expired')
  const elsewhere = await new Agent().get(callback)
  t.equal(elsewhere.status, 400, 'a stolen callback URL signs nobody in elsewhere')
  t.equal((await ctx.db.selectFrom('operators').selectAll().execute()).length, 1)

  // Signing in again finds the same account by issuer + subject, even with a new address.
  idp.account = { ...idp.account, email: 'ada.l@example.com' }
  const second = new Agent()
  t.equal((await second.get(await throughProvider(t, second, ctx))).status, 303)
  const rows = await ctx.db.selectFrom('operators').selectAll().execute()
  t.equal(rows.length, 1)
  t.equal(rows[0]!.email, 'ada.l@example.com')
})

t.test('an ID token for another audience, or expired, signs nobody in', async (t) => {
  const { idp, ctx } = await setup(t)
  for (const misbehaviour of ['wrong-audience', 'expired'] as const) {
    idp.idToken = misbehaviour
    const agent = new Agent()
    const res = await agent.get(await throughProvider(t, agent, ctx))
    t.equal(res.status, 401, `${misbehaviour}: 401`)
    t.match(res.text, 'Sign-in not accepted')
    t.equal((await agent.get(`${ctx.url}/admin`)).status, 303, `${misbehaviour}: still signed out`)
  }
  const audited = (await refusals(ctx)).map((r) => JSON.parse(r.details).reason as string)
  t.equal(audited.length, 2)
  t.match(audited[0], /aud/, 'the audience is what failed')
  t.match(audited[1], /exp|timestamp/i, 'the expiry is what failed')
  t.equal((await ctx.db.selectFrom('operators').selectAll().execute()).length, 0, 'no account made')
  t.ok(ctx.logs.some((l) => l.msg === 'operator single sign-on refused' && l.level === 40))
})

t.test('a domain or group not allowed is refused with a 403 page and an audit event', async (t) => {
  const { idp, ctx } = await setup(t, { OPERATOR_OIDC_ALLOWED_GROUPS: 'ledger' })
  idp.account = { sub: 'ext-7', email: 'mallory@evil.example', email_verified: true, groups: ['ledger'] }
  let agent = new Agent()
  const res = await agent.get(await throughProvider(t, agent, ctx))
  t.equal(res.status, 403)
  t.match(res.text, 'Not allowed to sign in')
  idp.account = { sub: 'emp-8', email: 'bob@example.com', email_verified: false, groups: ['ledger'] }
  agent = new Agent()
  t.equal((await agent.get(await throughProvider(t, agent, ctx))).status, 403, 'an unverified address is not trusted')
  idp.account = { sub: 'emp-9', email: 'carol@example.com', email_verified: true, groups: ['sales'] }
  agent = new Agent()
  t.equal((await agent.get(await throughProvider(t, agent, ctx))).status, 403, 'both the domain and a group are needed')
  const reasons = (await refusals(ctx)).map((r) => JSON.parse(r.details) as { reason: string; email?: string })
  t.match(reasons, [
    { reason: 'domain evil.example not allowed', email: 'mallory@evil.example' },
    { reason: 'e-mail address not verified' },
    { reason: 'not in an allowed group' },
  ])
  t.equal((await ctx.db.selectFrom('operators').selectAll().execute()).length, 0)
  idp.account = { sub: 'emp-10', email: 'dave@Example.com', email_verified: true, groups: ['sales', 'ledger'] }
  agent = new Agent()
  t.equal((await agent.get(await throughProvider(t, agent, ctx))).status, 303, 'the right domain and group get in')
})

t.test('roles from a claim; a disabled account stays out; password sign-in switched off', async (t) => {
  const { idp, ctx } = await setup(t, {
    OPERATOR_OIDC_ROLE_CLAIM: 'ledger_role',
    OPERATOR_OIDC_ROLE_MAP: 'ledger-admins=admin,ledger-ops=operator',
    OPERATOR_PASSWORD_SIGN_IN: 'false',
  })
  idp.account = { ...idp.account, ledger_role: ['ledger-ops', 'ledger-admins'] }
  const agent = new Agent()
  t.equal((await agent.get(await throughProvider(t, agent, ctx))).status, 303)
  const operators = await agent.get(`${ctx.url}/admin/operators`)
  t.equal(operators.status, 200, 'the highest mapped role: admin')
  t.match(operators.text, 'ledger_role')

  idp.account = { ...idp.account, ledger_role: ['ledger-ops'] }
  const again = new Agent()
  t.equal((await again.get(await throughProvider(t, again, ctx))).status, 303)
  t.equal((await again.get(`${ctx.url}/admin/operators`)).status, 403, 'the claim is read again at each sign-in')
  const changed = await ctx.db
    .selectFrom('audit_events')
    .select('details')
    .where('type', '=', 'operator.role_changed')
    .execute()
  t.match(changed, [{ details: /"from":"admin","to":"operator","via":"sso"/ }], 'and the change is audited')

  idp.account = { sub: 'emp-2', email: 'zed@example.com', email_verified: true }
  const none = new Agent()
  t.equal((await none.get(await throughProvider(t, none, ctx))).status, 403, 'no role in the claim: not allowed')

  await ctx.db.updateTable('operators').set({ disabled_at: 1 }).execute()
  idp.account = { sub: 'emp-1001', email: 'ada@example.com', email_verified: true, ledger_role: ['ledger-admins'] }
  const disabled = new Agent()
  const res = await disabled.get(await throughProvider(t, disabled, ctx))
  t.equal(res.status, 403)
  t.match(res.text, 'Account disabled')

  const page = await new Agent().get(`${ctx.url}/admin/sign-in`)
  t.notMatch(page.text, 'name="password"', 'no password form')
  await createOperator(ctx.db, 'ops', OPERATOR_PASSWORD, ctx.clock.now())
  const fresh = new Agent()
  await fresh.get(`${ctx.url}/admin/sign-in`)
  const post = await fresh.post(`${ctx.url}/admin/sign-in`, {
    username: 'ops',
    password: OPERATOR_PASSWORD,
  })
  t.equal(post.status, 403, 'a password is refused while password sign-in is off')
  t.match(post.text, 'Password sign-in is off')
})

t.test('claims only at UserInfo: e-mail, groups and role are read there', async (t) => {
  const env = {
    OPERATOR_OIDC_ALLOWED_GROUPS: 'ledger',
    OPERATOR_OIDC_ROLE_CLAIM: 'ledger_role',
    OPERATOR_OIDC_ROLE_MAP: 'ledger-ops=operator',
  }
  const { idp, ctx } = await setup(t, env, 'userinfo')
  idp.account = { ...idp.account, ledger_role: ['ledger-ops'] }
  const agent = new Agent()
  const done = await agent.get(await throughProvider(t, agent, ctx))
  t.equal(done.status, 303, done.text.slice(0, 400))
  const row = await ctx.db.selectFrom('operators').selectAll().executeTakeFirstOrThrow()
  t.match(row, { username: 'ada@example.com', role: 'operator', oidc_subject: 'emp-1001' })

  idp.account = { sub: 'emp-3', email: 'eve@example.com', email_verified: true, groups: ['sales'] }
  const outsider = new Agent()
  t.equal((await outsider.get(await throughProvider(t, outsider, ctx))).status, 403, 'UserInfo groups are checked too')
})

t.test('an unreachable provider is a 502 page; a callback with nothing pending a 400', async (t) => {
  const ctx = await startTestApp(t, {
    env: {
      OPERATOR_OIDC_ISSUER: 'http://127.0.0.1:9/none',
      OPERATOR_OIDC_CLIENT_ID: 'x',
      OPERATOR_OIDC_CLIENT_SECRET: 'y',
      OPERATOR_OIDC_ALLOWED_DOMAINS: 'example.com',
    },
  })
  const agent = new Agent()
  const res = await agent.get(`${ctx.url}/admin/sso/start`)
  t.equal(res.status, 502)
  t.match(res.text, 'Sign-in service unavailable')
  t.equal((await agent.get(`${ctx.url}/admin/sso/callback?code=abc&state=def`)).status, 400)
  t.equal((await agent.get(`${ctx.url}/admin/sso/callback?code=a%00b`)).status, 400, 'NUL refused by the schema')
})

t.test('configuration: TLS unless loopback, someone must be allowed, some way to sign in', async (t) => {
  const base = {
    NODE_ENV: 'test',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'sso-config-')),
    OPERATOR_OIDC_CLIENT_ID: 'x',
    OPERATOR_OIDC_CLIENT_SECRET: 'y',
    OPERATOR_OIDC_ALLOWED_DOMAINS: 'example.com',
  }
  t.throws(() => loadConfig({ ...base, OPERATOR_OIDC_ISSUER: 'http://idp.example.com' }), ConfigError)
  t.throws(
    () => loadConfig({ ...base, OPERATOR_OIDC_ISSUER: 'https://idp.example.com', OPERATOR_OIDC_ALLOWED_DOMAINS: '' }),
    /OPERATOR_OIDC_ALLOWED_GROUPS/,
  )
  t.throws(
    () => loadConfig({ NODE_ENV: 'test', DATA_DIR: base.DATA_DIR, OPERATOR_PASSWORD_SIGN_IN: 'false' }),
    ConfigError,
  )
  t.throws(
    () => loadConfig({ ...base, OPERATOR_OIDC_ISSUER: 'https://idp.example.com', OPERATOR_OIDC_ROLE_MAP: 'x=root' }),
    /OPERATOR_OIDC_ROLE_MAP/,
  )
  const ok = loadConfig({ ...base, OPERATOR_OIDC_ISSUER: 'https://idp.example.com/tenant' })
  t.equal(ok.operatorSso?.issuer, 'https://idp.example.com/tenant')
  t.equal(ok.operatorSso?.defaultRole, 'viewer')
})
