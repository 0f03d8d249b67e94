// The client library the app uses (openid-client v6, client_secret_basic) against the sandbox:
// proves the sandbox speaks the same protocol a real client expects.
import { randomBytes } from 'node:crypto'
import * as oc from 'openid-client'
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { answerConsent, control, signIn } from './helpers.js'

t.test('openid-client against the sandbox', async (t) => {
  const app = await startTestApp(t)
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const redirectUri = `${app.url}/carta/callback`
  const configuration = new oc.Configuration(
    {
      issuer: base,
      authorization_endpoint: `${base}/o/authorize/`,
      token_endpoint: `${base}/o/access_token/`,
      revocation_endpoint: `${base}/o/revoke_token/`,
    },
    v2.clientId,
    { client_secret: v2.clientSecret },
    oc.ClientSecretBasic(v2.clientSecret),
  )
  oc.allowInsecureRequests(configuration)

  const connect = async (grant?: string[]) => {
    const verifier = oc.randomPKCECodeVerifier()
    const state = randomBytes(8).toString('hex')
    const url = oc.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      scope: v2.scopes.join(' '),
      state,
      code_challenge: await oc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    })
    const agent = new Agent()
    await signIn(agent, base, 'cu_1004')
    const back = await answerConsent(agent, url.toString(), { decision: 'allow', ...(grant ? { scopes: grant } : {}) })
    return oc.authorizationCodeGrant(configuration, back, { pkceCodeVerifier: verifier, expectedState: state })
  }

  const full = await connect()
  t.equal(full.token_type.toLowerCase(), 'bearer')
  t.equal(full.scope, undefined, 'scope absent: the requested set was granted')
  t.ok(full.expiresIn()! >= 3598 && full.expiresIn()! <= 3600, 'expires_in 3600')

  const partial = await connect(['read_user_info'])
  t.equal(partial.scope, 'read_user_info')
  // The challenge parses as RFC 6750 says: scheme bearer, error and the scope needed.
  await t.rejects(
    oc.fetchProtectedResource(configuration, partial.access_token, new URL(`${base}/v1alpha1/issuers`), 'GET'),
    {
      code: 'OAUTH_WWW_AUTHENTICATE_CHALLENGE',
      status: 403,
      cause: [{ scheme: 'bearer', parameters: { error: 'insufficient_scope', scope: 'read_issuer_info' } }],
    },
  )
  const me = await oc.fetchProtectedResource(
    configuration,
    partial.access_token,
    new URL(`${base}/v1alpha1/user`),
    'GET',
  )
  t.same(await me.json(), { id: 'cu_1004', email: 'dana.ruiz@northwind.example', firstName: 'Dana', lastName: 'Ruiz' })

  const refreshed = await oc.refreshTokenGrant(configuration, full.refresh_token!)
  t.not(refreshed.refresh_token, full.refresh_token)
  t.ok(refreshed.scope)
  const errorOf = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (err: { error?: string }) => err.error,
    )
  t.equal(
    await errorOf(oc.refreshTokenGrant(configuration, full.refresh_token!)),
    'invalid_grant',
    'rotated refresh token refused',
  )

  await oc.tokenRevocation(configuration, refreshed.refresh_token!, { token_type_hint: 'refresh_token' })
  t.equal(
    await errorOf(oc.refreshTokenGrant(configuration, refreshed.refresh_token!)),
    'invalid_grant',
    'revoked refresh token refused',
  )

  await control(base, 'fail', { endpoint: 'token', status: 503, times: 1 })
  await t.rejects(oc.refreshTokenGrant(configuration, partial.refresh_token!), 'an injected 503 surfaces as an error')
  t.ok(await oc.refreshTokenGrant(configuration, partial.refresh_token!), 'then works')

  const wrong = new oc.Configuration(
    configuration.serverMetadata(),
    v2.clientId,
    { client_secret: 'wrong' },
    oc.ClientSecretBasic('wrong'),
  )
  oc.allowInsecureRequests(wrong)
  // A 401 carries WWW-Authenticate, so openid-client reports a challenge error, not a body error.
  await t.rejects(oc.refreshTokenGrant(wrong, partial.refresh_token!), {
    code: 'OAUTH_WWW_AUTHENTICATE_CHALLENGE',
    status: 401,
    cause: [{ scheme: 'basic', parameters: { error: 'invalid_client' } }],
  })
})
