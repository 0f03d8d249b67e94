// The sandbox's token and revocation endpoints: client authentication, code rules, PKCE,
// rotating refresh tokens, RFC 7009 semantics.
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { parseScopes } from '../../src/scopes.js'
import { startTestApp } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { api, basic, control, getCode, getTokens, revokeRequest, tokenRequest } from './helpers.js'

t.test('token endpoint', async (t) => {
  const clock = new ManualClock(Date.UTC(2025, 0, 15, 9, 0, 0))
  const app = await startTestApp(t, { clock })
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const redirectUri = `${app.url}/carta/callback`
  const auth = basic(v2.clientId, v2.clientSecret)
  const codeForm = (issued: { code: string; verifier: string }) => ({
    grant_type: 'authorization_code',
    code: issued.code,
    redirect_uri: redirectUri,
    code_verifier: issued.verifier,
  })

  t.test(
    'client authentication: HTTP Basic required and checked (401 invalid_client + WWW-Authenticate)',
    async (t) => {
      const issued = await getCode(new Agent(), base, v2, redirectUri)
      const attempts: Array<[string | undefined, Record<string, string>]> = [
        [undefined, {}],
        [basic(v2.clientId, 'wrong-secret'), {}],
        [basic('nobody', v2.clientSecret), {}],
        [basic(v1.clientId, `${v1.clientSecret}x`), {}],
        [undefined, { client_id: v2.clientId, client_secret: v2.clientSecret }],
        ['Bearer abc', {}],
      ]
      for (const [authorization, extra] of attempts) {
        const res = await tokenRequest(base, { ...codeForm(issued), ...extra }, authorization)
        t.equal(res.status, 401)
        t.equal(res.json.error, 'invalid_client')
        t.match(res.headers.get('www-authenticate'), /^Basic realm=/)
        t.equal(res.headers.get('cache-control'), 'no-store')
      }
      const body = await tokenRequest(base, {
        ...codeForm(issued),
        client_id: v2.clientId,
        client_secret: v2.clientSecret,
      })
      t.match(body.json.error_description, /HTTP Basic/)
      // None of those spent the code.
      const ok = await tokenRequest(base, codeForm(issued), auth)
      t.equal(ok.status, 200)
      t.notOk(JSON.stringify(app.logs).includes(v2.clientSecret), 'secret never logged')
    },
  )

  t.test('client id and secret are form-urlencoded inside Basic (RFC 6749 §2.3.1)', async (t) => {
    // The app's clients have plain ids; prove decoding with an id/secret needing encoding.
    const { parseBasicAuth } = await import('../../src/sandbox/store.js')
    t.same(parseBasicAuth(basic('my client:1', 'p@ss wörd+/=')), { id: 'my client:1', secret: 'p@ss wörd+/=' })
    t.same(parseBasicAuth(`Basic ${Buffer.from('id%3A:s%2Bx').toString('base64')}`), { id: 'id:', secret: 's+x' })
    t.equal(parseBasicAuth('Basic !!!'), null)
    t.equal(parseBasicAuth(`Basic ${Buffer.from('nocolon').toString('base64')}`), null)
  })

  t.test('full grant: scope omitted (equal to the request); partial grant: scope reported', async (t) => {
    const full = await getTokens(new Agent(), base, v2, redirectUri)
    t.equal(full.token_type, 'Bearer')
    t.equal(full.expires_in, 3600)
    t.ok(full.access_token && full.refresh_token)
    t.equal(full.scope, undefined, 'RFC 6749 §5.1: omitted when granted = requested')
    const partial = await getTokens(new Agent(), base, v2, redirectUri, {
      grant: ['read_user_info', 'read_issuer_info'],
    })
    t.same(parseScopes(partial.scope), ['read_issuer_info', 'read_user_info'])
  })

  t.test('a code is single-use; reusing it fails AND revokes the tokens issued from it', async (t) => {
    const issued = await getCode(new Agent(), base, v2, redirectUri)
    const first = await tokenRequest(base, codeForm(issued), auth)
    t.equal(first.status, 200)
    t.equal((await api(base, '/v1alpha1/user', first.json.access_token as string)).status, 200)
    const second = await tokenRequest(base, codeForm(issued), auth)
    t.equal(second.status, 400)
    t.equal(second.json.error, 'invalid_grant')
    t.match(second.json.error_description, /already been used/)
    t.equal((await api(base, '/v1alpha1/user', first.json.access_token as string)).status, 401, 'access token revoked')
    const refresh = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: first.json.refresh_token as string },
      auth,
    )
    t.equal(refresh.json.error, 'invalid_grant', 'refresh token revoked')
  })

  t.test('a code expires after 60 seconds (sandbox time)', async (t) => {
    const fresh = await getCode(new Agent(), base, v2, redirectUri)
    clock.advance(59_000)
    t.equal((await tokenRequest(base, codeForm(fresh), auth)).status, 200, 'still valid at 59 s')
    const stale = await getCode(new Agent(), base, v2, redirectUri)
    clock.advance(61_000)
    const res = await tokenRequest(base, codeForm(stale), auth)
    t.equal(res.status, 400)
    t.equal(res.json.error, 'invalid_grant')
    t.match(res.json.error_description, /expired/)
  })

  t.test('PKCE S256 is checked when a challenge was sent (RFC 7636 §4.6)', async (t) => {
    const issued = await getCode(new Agent(), base, v2, redirectUri)
    const wrong = await tokenRequest(base, { ...codeForm(issued), code_verifier: 'x'.repeat(43) }, auth)
    t.equal(wrong.status, 400)
    t.equal(wrong.json.error, 'invalid_grant')
    t.match(wrong.json.error_description, /PKCE/)
    const again = await getCode(new Agent(), base, v2, redirectUri)
    const { code_verifier: _omit, ...withoutVerifier } = codeForm(again)
    const missing = await tokenRequest(base, withoutVerifier, auth)
    t.equal(missing.json.error, 'invalid_grant')
    const noPkce = await getCode(new Agent(), base, v2, redirectUri, { pkce: false })
    const unexpected = await tokenRequest(base, { ...codeForm(noPkce), code_verifier: 'y'.repeat(43) }, auth)
    t.equal(unexpected.json.error, 'invalid_grant', 'a verifier without a challenge is refused')
    const noPkce2 = await getCode(new Agent(), base, v2, redirectUri, { pkce: false })
    const { code_verifier: _x, ...plain } = codeForm(noPkce2)
    t.equal((await tokenRequest(base, plain, auth)).status, 200, 'PKCE is optional')
  })

  t.test('redirect_uri must equal the authorization request; code bound to its client', async (t) => {
    const issued = await getCode(new Agent(), base, v2, redirectUri)
    const res = await tokenRequest(base, { ...codeForm(issued), redirect_uri: `${redirectUri}?x` }, auth)
    t.equal(res.json.error, 'invalid_grant')
    t.match(res.json.error_description, /redirect_uri/)
    const other = await getCode(new Agent(), base, v2, redirectUri)
    const stolen = await tokenRequest(base, codeForm(other), basic(v1.clientId, v1.clientSecret))
    t.equal(stolen.json.error, 'invalid_grant')
    const unknown = await tokenRequest(base, { ...codeForm(other), code: 'nope' }, auth)
    t.equal(unknown.json.error, 'invalid_grant')
  })

  t.test('malformed requests: RFC 6749 §5.2 error bodies', async (t) => {
    t.equal((await tokenRequest(base, { code: 'x' }, auth)).json.error, 'invalid_request')
    t.equal((await tokenRequest(base, { grant_type: 'password' }, auth)).json.error, 'unsupported_grant_type')
    t.equal((await tokenRequest(base, { grant_type: 'authorization_code' }, auth)).json.error, 'invalid_request')
    t.equal((await tokenRequest(base, { grant_type: 'refresh_token' }, auth)).json.error, 'invalid_request')
    const json = await fetch(`${base}/o/access_token/`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: '{"grant_type":"refresh_token"}',
    })
    t.equal(json.status, 400)
    t.equal(((await json.json()) as { error: string }).error, 'invalid_request')
  })

  t.test('refresh tokens rotate: the old one stops working at once', async (t) => {
    await control(base, 'reset', {})
    const first = await getTokens(new Agent(), base, v2, redirectUri, { userId: 'cu_1002' })
    const r1 = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: first.refresh_token }, auth)
    t.equal(r1.status, 200)
    t.equal(r1.headers.get('cache-control'), 'no-store')
    t.not(r1.json.refresh_token, first.refresh_token)
    t.not(r1.json.access_token, first.access_token)
    t.equal(r1.json.expires_in, 3600)
    t.same(parseScopes(r1.json.scope as string), parseScopes(v2.scopes.join(' ')), 'scope always present on refresh')
    const reuse = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: first.refresh_token }, auth)
    t.equal(reuse.status, 400)
    t.equal(reuse.json.error, 'invalid_grant')
    t.equal(
      (await api(base, '/v1alpha1/user', r1.json.access_token as string)).status,
      200,
      'the rotation survives a stale reuse',
    )
    const r2 = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token as string },
      auth,
    )
    t.equal(r2.status, 200)
    const otherClient = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: r2.json.refresh_token as string },
      basic(v1.clientId, v1.clientSecret),
    )
    t.equal(otherClient.json.error, 'invalid_grant', "another client cannot spend this client's refresh token")
    const stats = await control(base, 'stats')
    t.equal(stats.json.refreshes, 2)
    t.same(stats.json.byGrant, {
      authorization_code: { requests: 1, ok: 1, errors: 0 },
      refresh_token: { requests: 4, ok: 2, errors: 2 },
    })
    const tokens = stats.json.tokens as Array<Record<string, unknown>>
    t.equal(tokens.filter((x) => x.kind === 'refresh' && x.status === 'rotated').length, 2)
    t.equal(tokens.filter((x) => x.kind === 'refresh' && x.status === 'live').length, 1)
    t.notOk(JSON.stringify(stats.json).includes(first.refresh_token), 'no token values in stats')
    t.notOk(JSON.stringify(stats.json).includes(first.access_token))
  })

  t.test('refresh may narrow the scope, never widen it', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri, {
      grant: ['read_user_info', 'read_issuer_info'],
    })
    const wide = await tokenRequest(
      base,
      {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
        scope: 'read_user_info read_issuer_capitalizationtablesummary',
      },
      auth,
    )
    t.equal(wide.status, 400)
    t.equal(wide.json.error, 'invalid_scope')
    const narrow = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, scope: 'read_user_info' },
      auth,
    )
    t.equal(narrow.status, 200, 'a refused widening did not spend the refresh token')
    t.equal(narrow.json.scope, 'read_user_info')
    t.equal((await api(base, '/v1alpha1/issuers', narrow.json.access_token as string)).status, 403)
  })

  t.test('shrink control: the next refresh reports fewer scopes', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri, { userId: 'cu_1004' })
    const bad = await control(base, 'shrink', {
      userId: 'cu_1004',
      clientId: 'nobody',
      removeScopes: ['read_issuer_info'],
    })
    t.equal(bad.status, 404)
    const res = await control(base, 'shrink', {
      userId: 'cu_1004',
      clientId: v2.clientId,
      removeScopes: ['read_issuer_capitalizationtablesummary'],
    })
    t.equal(res.status, 200)
    t.equal(
      (await api(base, '/v1alpha1/issuers/iss_northwind/capitalizationTable', tokens.access_token)).status,
      200,
      'current access token unchanged until refresh',
    )
    const refreshed = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
      auth,
    )
    t.same(parseScopes(refreshed.json.scope as string), ['read_issuer_info', 'read_user_info'])
    const cap = await api(
      base,
      '/v1alpha1/issuers/iss_northwind/capitalizationTable',
      refreshed.json.access_token as string,
    )
    t.equal(cap.status, 403)
    const again = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: refreshed.json.refresh_token as string },
      auth,
    )
    t.same(parseScopes(again.json.scope as string), ['read_issuer_info', 'read_user_info'], 'stays shrunk')
  })

  t.test('revocation (RFC 7009)', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri)
    t.equal((await revokeRequest(base, { token: tokens.refresh_token })).status, 401, 'client auth required')
    t.equal((await revokeRequest(base, { token: tokens.refresh_token }, basic(v2.clientId, 'nope'))).status, 401)
    t.equal((await revokeRequest(base, {}, auth)).status, 400, 'token required')

    // Another client's revocation is accepted (200) but does nothing.
    t.equal(
      (await revokeRequest(base, { token: tokens.refresh_token }, basic(v1.clientId, v1.clientSecret))).status,
      200,
    )
    t.equal(
      (await api(base, '/v1alpha1/user', tokens.access_token)).status,
      200,
      "another client cannot revoke this client's token",
    )

    t.equal((await revokeRequest(base, { token: 'never-issued' }, auth)).status, 200, 'unknown token: 200')

    // Revoking the refresh token takes the access token with it.
    const res = await revokeRequest(base, { token: tokens.refresh_token, token_type_hint: 'refresh_token' }, auth)
    t.equal(res.status, 200)
    t.equal((await api(base, '/v1alpha1/user', tokens.access_token)).status, 401)
    const refresh = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, auth)
    t.equal(refresh.json.error, 'invalid_grant')
    t.match(refresh.json.error_description, /revoked/)
    t.equal((await revokeRequest(base, { token: tokens.refresh_token }, auth)).status, 200, 'already revoked: 200')

    // Revoking an access token (with a wrong hint) leaves the refresh token working.
    const other = await getTokens(new Agent(), base, v2, redirectUri)
    t.equal(
      (await revokeRequest(base, { token: other.access_token, token_type_hint: 'refresh_token' }, auth)).status,
      200,
    )
    t.equal((await api(base, '/v1alpha1/user', other.access_token)).status, 401)
    t.equal(
      (await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: other.refresh_token }, auth)).status,
      200,
    )
  })
})
