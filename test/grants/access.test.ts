// Refresh single-flight: one refresh at the sandbox for ten concurrent requests,
// scopes recorded from the refresh response, invalid_grant → broken grant + reconnect prompt.
import t from 'tap'
import { listIssuers } from '../../src/carta/api.js'
import { withAccessToken } from '../../src/grants/access.js'
import { readTokens } from '../../src/grants/tokens.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp } from '../helpers/app.js'
import { basic, tokenRequest } from '../sandbox/helpers.js'
import { connectUser, expireTokens, sandboxControl, sandboxStats, tokenVersion } from '../helpers/connect.js'

t.test('ten concurrent page loads with an expired token cause exactly one refresh', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId } = await connectUser(app)
  const before = await readTokens(app.db, app.app.deps.cipher, grantId)
  expireTokens(app)
  const stats0 = await sandboxStats(app)
  const pages = await Promise.all(Array.from({ length: 10 }, () => agent.get(`${app.url}/features/issuers`)))
  t.same(
    pages.map((p) => p.status),
    Array(10).fill(200),
    'all ten pages load',
  )
  t.ok(
    pages.every((p) => p.text.includes('Lumen Robotics, Inc.')),
    'each shows the issuer list',
  )
  const stats1 = await sandboxStats(app)
  t.equal(stats1.refreshes - stats0.refreshes, 1, 'one refresh at the sandbox')
  t.equal(await tokenVersion(app, grantId), before!.version + 1, 'version bumped once')
  const after = await readTokens(app.db, app.app.deps.cipher, grantId)
  t.not(after!.refreshToken, before!.refreshToken, 'rotated refresh token stored')
  t.ok(after!.expiresAt! > app.clock.now(), 'new expiry in the future')
  const audit = await app.db
    .selectFrom('audit_events')
    .select(['type', 'details'])
    .where('grant_id', '=', grantId)
    .where('type', '=', 'grant.refreshed')
    .execute()
  t.equal(audit.length, 1, 'one grant.refreshed event')

  // Function level, twice more: no page rendering in the way.
  expireTokens(app)
  const deps = { ...app.app.deps }
  const results = await Promise.all(
    Array.from({ length: 10 }, () => withAccessToken(deps, grantId, (token, ctx) => listIssuers(ctx.app, token))),
  )
  t.equal(results.length, 10)
  t.ok(results.every((r) => r.length === 1))
  t.equal((await sandboxStats(app)).refreshes - stats1.refreshes, 1, 'again exactly one refresh')
  const row = await app.db
    .selectFrom('grant_tokens')
    .select(['refresh_lock_owner', 'refresh_lock_until'])
    .where('grant_id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.same(row, { refresh_lock_owner: null, refresh_lock_until: null }, 'lease released')
})

t.test('a 401 from the API (Carta clock ahead) refreshes once and retries', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId } = await connectUser(app)
  // Move only the sandbox's clock: our records say the token is still fresh.
  await sandboxControl(app, 'clock', { advanceSeconds: 2 * 3600 })
  const stats0 = await sandboxStats(app)
  const page = await agent.get(`${app.url}/features/issuers`)
  t.equal(page.status, 200)
  t.match(page.text, /Lumen Robotics/)
  t.equal((await sandboxStats(app)).refreshes - stats0.refreshes, 1)
  t.equal(await tokenVersion(app, grantId), 2)
})

t.test('a refresh response with fewer scopes is recorded (grant, scopes, rollout, audit)', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId, userId } = await connectUser(app)
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const appRow = await app.db
    .selectFrom('oauth_apps')
    .select(['id'])
    .where('key', '=', 'production-v2')
    .executeTakeFirstOrThrow()
  const rolloutId = await createRollout(
    app.db,
    { name: 'Cap tables', appId: appRow.id, scopes: ['read_issuer_capitalizationtablesummary'] },
    'operator:test',
    app.clock.now(),
  )
  await sandboxControl(app, 'shrink', {
    userId: 'cu_1001',
    clientId: v2.clientId,
    removeScopes: ['read_issuer_capitalizationtablesummary'],
  })
  expireTokens(app)
  const page = await agent.get(`${app.url}/features/issuers`)
  t.equal(page.status, 200)
  const grant = await app.db
    .selectFrom('grants')
    .select(['granted_scopes', 'scopes_source', 'status'])
    .where('id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.equal(grant.granted_scopes, 'read_issuer_info read_user_info')
  t.equal(grant.status, 'active')
  const scopes = await app.db
    .selectFrom('grant_scopes')
    .select('scope')
    .where('grant_id', '=', grantId)
    .orderBy('scope')
    .execute()
  t.same(
    scopes.map((s) => s.scope),
    ['read_issuer_info', 'read_user_info'],
  )
  const member = await app.db
    .selectFrom('rollout_members')
    .select(['state', 'missing_scopes'])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  t.same(member, { state: 'lacking', missing_scopes: 'read_issuer_capitalizationtablesummary' })
  const changed = await app.db
    .selectFrom('audit_events')
    .select('details')
    .where('type', '=', 'grant.scopes_changed')
    .where('grant_id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.same(JSON.parse(changed.details).removed, ['read_issuer_capitalizationtablesummary'])
  // The feature needing the removed scope now shows the gate, not Carta's 403.
  const gate = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  t.equal(gate.status, 403)
  t.match(gate.text, /See a summary of each company&#39;s cap table|See a summary of each company's cap table/)
})

t.test('invalid_grant: grant broken, reconnect page, user listed as needing reconnection', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId, userId } = await connectUser(app)
  const appRow = await app.db
    .selectFrom('oauth_apps')
    .select(['id'])
    .where('key', '=', 'production-v2')
    .executeTakeFirstOrThrow()
  const rolloutId = await createRollout(
    app.db,
    { name: 'Everything', appId: appRow.id, scopes: ['read_issuer_info'] },
    'operator:test',
    app.clock.now(),
  )
  // Someone outside this database spends the refresh token: Carta rotates it, ours is now dead.
  const stored = await readTokens(app.db, app.app.deps.cipher, grantId)
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const spent = await tokenRequest(
    `${app.url}/sandbox`,
    { grant_type: 'refresh_token', refresh_token: stored!.refreshToken! },
    basic(v2.clientId, v2.clientSecret),
  )
  t.equal(spent.status, 200)
  expireTokens(app)
  const page = await agent.get(`${app.url}/features/issuers`)
  t.equal(page.status, 409)
  t.match(page.text, /Reconnect to Carta/)
  t.match(page.text, /href="\/carta\/connect\?app=production-v2"/)
  t.notMatch(page.text, /invalid_grant/, 'no raw Carta error on the page')
  const grant = await app.db
    .selectFrom('grants')
    .select(['status', 'status_reason'])
    .where('id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.equal(grant.status, 'broken')
  t.match(grant.status_reason, /invalid_grant/)
  const user = await app.db.selectFrom('end_users').select('status').where('id', '=', userId).executeTakeFirstOrThrow()
  t.equal(user.status, 'needs_reconnect')
  const member = await app.db
    .selectFrom('rollout_members')
    .select('state')
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  t.equal(member.state, 'reconnect')
  t.equal(
    (
      await app.db
        .selectFrom('audit_events')
        .select('id')
        .where('type', '=', 'grant.broken')
        .where('grant_id', '=', grantId)
        .execute()
    ).length,
    1,
  )
  // The home page also offers to reconnect (through the same refresh helper).
  const again = await agent.get(`${app.url}/features/issuers`)
  t.equal(again.status, 409, 'stays on the reconnect prompt without calling Carta again')
})

t.test('Carta down during refresh: a clear 503, grant untouched', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId } = await connectUser(app)
  expireTokens(app)
  await sandboxControl(app, 'fail', { endpoint: 'token', status: 503, times: 1 })
  const page = await agent.get(`${app.url}/features/issuers`)
  t.equal(page.status, 503)
  t.match(page.text, /Carta is not answering/)
  const grant = await app.db.selectFrom('grants').select('status').where('id', '=', grantId).executeTakeFirstOrThrow()
  t.equal(grant.status, 'active')
  t.equal(await tokenVersion(app, grantId), 1)
  const row = await app.db
    .selectFrom('grant_tokens')
    .select(['refresh_lock_owner'])
    .where('grant_id', '=', grantId)
    .executeTakeFirstOrThrow()
  t.equal(row.refresh_lock_owner, null, 'lease released after the failure')
  t.ok(app.logs.some((l) => l.msg === 'token refresh failed; grant left as is'))
  const retry = await agent.get(`${app.url}/features/issuers`)
  t.equal(retry.status, 200, 'works once Carta is back')
})
