// The same connect flow against oidc-provider (code nobody here wrote, configured with Carta's
// paths and client_secret_basic): code exchange, the recorded scopes, refresh, revoke.
import t, { type Test } from 'tap'
import { refreshTokens, revokeToken, CartaOAuthError } from '../../src/carta/oauth-client.js'
import { readTokens } from '../../src/grants/tokens.js'
import { formatScopes, parseScopes } from '../../src/scopes.js'
import { Agent } from '../helpers/browser-agent.js'
import { startTestApp } from '../helpers/app.js'
import { startOidcCarta } from '../helpers/oidc-provider.js'
import { beginConnect } from '../flows/helpers.js'

const SCOPES = ['read_issuer_info', 'read_user_info', 'readwrite_demo']

async function setup(t: Test) {
  const oidc = await startOidcCarta(t, SCOPES)
  const app = await startTestApp(t, { env: oidc.env() })
  oidc.configure(`${app.url}/carta/callback`)
  return { oidc, app, agent: new Agent() }
}

/** /carta/connect → provider authorize → (interaction: login, consent) → our callback. */
async function connect(t: Test, agent: Agent, baseUrl: string) {
  const { authorizeUrl } = await beginConnect(agent, baseUrl)
  let res = await agent.get(authorizeUrl.href)
  for (let hops = 0; hops < 10 && res.location && !res.location.startsWith(`${baseUrl}/carta/callback`); hops++) {
    res = await agent.get(new URL(res.location, res.url).href)
  }
  t.ok(res.location?.startsWith(`${baseUrl}/carta/callback?`), 'provider redirects to our callback')
  return agent.get(res.location!)
}

t.test('code exchange with a partial grant, then refresh and revoke', async (t) => {
  const { oidc, app, agent } = await setup(t)
  oidc.grantScopes = ['read_user_info', 'read_issuer_info']
  const done = await connect(t, agent, app.url)
  t.equal(done.status, 303, done.text.slice(0, 400))
  t.equal(done.location, '/')

  const grant = await app.db.selectFrom('grants').selectAll().executeTakeFirstOrThrow()
  t.equal(grant.status, 'active')
  t.equal(grant.requested_scopes, 'read_issuer_info read_user_info readwrite_demo')
  t.equal(grant.granted_scopes, 'read_issuer_info read_user_info', 'the subset oidc-provider granted')
  t.equal(grant.scopes_source, 'reported')
  const user = await app.db.selectFrom('end_users').selectAll().executeTakeFirstOrThrow()
  t.equal(user.carta_user_id, oidc.accountId, 'identity from the liberal user parser (nested user.user_id)')
  t.equal(user.name, 'Grace Hopper')

  const home = await agent.get(`${app.url}/`)
  t.match(home.text, /Grace Hopper/)
  t.match(home.text, /Compiler Works Ltd\./, 'issuers (results[]/legal_name) listed')

  const stored = await readTokens(app.db, app.app.deps.cipher, grant.id)
  t.ok(stored?.refreshToken, 'refresh token issued and stored')
  const known = await oidc.findAccessToken(stored!.accessToken)
  t.equal(known?.accountId, oidc.accountId, 'the provider knows the stored access token')
  t.equal(
    formatScopes(parseScopes(known?.scope)),
    'read_issuer_info read_user_info',
    'with the granted scopes (compared as a set)',
  )
  t.ok(stored!.expiresAt! > app.clock.now() + 3500_000, 'expiry from expires_in')

  const appConfig = app.config.apps[0]!
  const refreshed = await refreshTokens(appConfig, stored!.refreshToken!, { timeoutMs: 5000, now: app.clock.now() })
  t.not(refreshed.accessToken, stored!.accessToken, 'new access token')
  t.ok(refreshed.refreshToken && refreshed.refreshToken !== stored!.refreshToken, 'refresh token rotated')
  t.equal(refreshed.tokenType, 'Bearer')
  t.ok(await oidc.findAccessToken(refreshed.accessToken), 'refreshed token is live')
  await revokeToken(appConfig, refreshed.accessToken, 'access_token', { timeoutMs: 5000 })
  t.equal(await oidc.findAccessToken(refreshed.accessToken), undefined, 'revoked at the provider (RFC 7009)')

  const reused = await refreshTokens(appConfig, stored!.refreshToken!, { timeoutMs: 5000 }).catch((e: unknown) => e)
  t.ok(
    reused instanceof CartaOAuthError && reused.kind === 'invalid_grant',
    'the rotated-out refresh token is invalid_grant',
  )
  await revokeToken(appConfig, 'never-issued', 'refresh_token', { timeoutMs: 5000 })
  t.pass('revoking an unknown token is a success (RFC 7009 §2.2)')
})

t.test('wrong client secret: the provider refuses, nothing recorded', async (t) => {
  const { oidc, app, agent } = await setup(t)
  app.config.apps[0]!.clientSecret = 'not-the-secret-at-all-0123456789'
  const done = await connect(t, agent, app.url)
  t.equal(done.status, 502)
  t.match(done.text, /invalid_client/)
  t.equal((await app.db.selectFrom('grants').selectAll().execute()).length, 0)
  void oidc
})
