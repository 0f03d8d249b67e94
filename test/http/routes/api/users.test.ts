// /api/v1/users over HTTP: each endpoint's success and its errors (no key, unknown or revoked key,
// wrong permission, unknown user, bad body, broken grant), problem+json on every error, and no
// token or key in any log line.
import t, { type Test } from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import { revokeApiKey } from '../../../../src/api/keys.js'
import { startTestApp } from '../../../helpers/app.js'
import { connectUser, expireTokens, sandboxStats } from '../../../helpers/connect.js'
import { breakGrant } from '../../../helpers/ledger.js'
import { auditRows, createMember, createRollout } from '../../../links/fixtures.js'
import { api, newKey } from './helpers.js'

async function setup(t: Tap) {
  const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { name: 'Cap table', now: clock.now() })
  const userId = await createMember(
    app.app.deps,
    {
      cartaUserId: 'c-ann',
      email: 'ann@example.com',
      appKey: 'production-v1',
      granted: ['read_issuer_info', 'read_user_info'],
    },
    clock.now(),
  )
  return { app, clock, rollout, userId }
}
type Tap = Test

function isProblem(
  t: Tap,
  res: { status: number; headers: Headers; body: Record<string, unknown> },
  status: number,
  code: string,
) {
  t.equal(res.status, status, `status ${status}`)
  t.match(res.headers.get('content-type'), /^application\/problem\+json/, 'problem+json')
  t.equal(res.body.status, status, 'status in the body')
  t.equal(res.body.code, code, `code ${code}`)
  t.equal(res.body.type, `/api/docs#problem-${code}`, 'type names the code')
  t.type(res.body.title, 'string')
  t.type(res.body.detail, 'string')
}

t.test('GET /users/:cartaUserId: identity, app, scopes with their source, rollouts', async (t) => {
  const { app, rollout } = await setup(t)
  const { key } = await newKey(app, ['read'])
  const res = await api(app, key, 'GET', '/api/v1/users/c-ann')
  t.equal(res.status, 200)
  t.same(res.body, {
    cartaUserId: 'c-ann',
    externalUserId: null,
    email: 'ann@example.com',
    name: 'ann@example.com',
    status: 'connected',
    app: { key: 'production-v1', clientId: app.config.apps.find((a) => a.key === 'production-v1')!.clientId },
    grantedScopes: ['read_issuer_info', 'read_user_info'],
    scopesSource: 'reported',
    rollouts: [
      {
        id: rollout.id,
        name: 'Cap table',
        covered: false,
        missingScopes: res.body.rollouts
          ? (res.body.rollouts as Array<{ missingScopes: string[] }>)[0]!.missingScopes
          : [],
      },
    ],
  })
  const missing = (res.body.rollouts as Array<{ missingScopes: string[] }>)[0]!.missingScopes
  t.ok(missing.length > 0, 'the rollout lists what the user misses')
  t.notOk(missing.includes('read_issuer_info'), 'not what they hold')

  isProblem(t, await api(app, key, 'GET', '/api/v1/users/c-nobody'), 404, 'api.user_not_found')
  isProblem(t, await api(app, key, 'GET', '/api/v1/users?externalUserId=ext-1'), 404, 'api.user_not_found')
  await app.db
    .updateTable('end_users')
    .set({ external_user_id: 'ext-1' })
    .where('carta_user_id', '=', 'c-ann')
    .execute()
  const byExternal = await api(app, key, 'GET', '/api/v1/users?externalUserId=ext-1')
  t.equal(byExternal.status, 200)
  t.equal(byExternal.body.cartaUserId, 'c-ann', 'addressable by the integrator id')
  isProblem(t, await api(app, key, 'GET', '/api/v1/users'), 400, 'request.invalid')
  isProblem(t, await api(app, key, 'GET', '/api/v1/users/a%00b'), 404, 'request.not_found')
})

t.test(
  'keys: none, malformed, unknown, revoked, wrong permission; sessions do not count; keys cannot reach /admin',
  async (t) => {
    const { app } = await setup(t)
    const { key, id } = await newKey(app, ['read'])
    const none = await api(app, null, 'GET', '/api/v1/users/c-ann')
    isProblem(t, none, 401, 'api.unauthorized')
    t.equal(none.headers.get('www-authenticate'), 'Bearer realm="scope-ledger"', 'RFC 6750 challenge')
    isProblem(t, await api(app, 'not-a-key', 'GET', '/api/v1/users/c-ann'), 401, 'api.unauthorized')
    const unknown = await api(app, `slk_${'A'.repeat(43)}`, 'GET', '/api/v1/users/c-ann')
    isProblem(t, unknown, 401, 'api.unauthorized')
    t.match(unknown.headers.get('www-authenticate'), /error="invalid_token"/)
    const forbidden = await api(app, key, 'GET', '/api/v1/users/c-ann/access-token')
    isProblem(t, forbidden, 403, 'api.forbidden')
    t.match(forbidden.headers.get('www-authenticate'), /insufficient_scope/)
    t.equal((await api(app, key, 'GET', '/api/v1/users/c-ann')).status, 200, 'the key works')
    await revokeApiKey(app.db, id, 'operator:test', app.clock.now())
    isProblem(t, await api(app, key, 'GET', '/api/v1/users/c-ann'), 401, 'api.unauthorized')

    // An operator's session cookie is not an API credential.
    const { signInOperator } = await import('../../../helpers/connect.js')
    const operator = await signInOperator(app)
    const viaCookie = await operator.get(`${app.url}/api/v1/users/c-ann`)
    t.equal(viaCookie.status, 401, 'a session cookie does not reach the API')
    // Nor does the API do any session work: a rolling session cookie is re-sent on every page,
    // never by /api/v1, even to a request that carries a valid session and a valid key.
    const cookie = `sl_session=${operator.cookieValue(app.url, 'sl_session')}`
    const page = await fetch(`${app.url}/admin`, { headers: { cookie }, redirect: 'manual' })
    t.equal(page.status, 200, 'the cookie is a live operator session')
    t.ok(page.headers.get('set-cookie'), 'pages re-send the rolling session cookie')
    const { key: reader } = await newKey(app, ['read'])
    const withBoth = await api(app, reader, 'GET', '/api/v1/users/c-ann', undefined, { cookie })
    t.equal(withBoth.status, 200)
    t.equal(withBoth.headers.get('set-cookie'), null, 'no session cookie from /api/v1')
    // An API key is not an operator session.
    const { key: live } = await newKey(app, ['read', 'tokens', 'links', 'connect'])
    const admin = await fetch(`${app.url}/admin`, {
      headers: { authorization: `Bearer ${live}` },
      redirect: 'manual',
    })
    t.equal(admin.status, 303, 'a key gets the sign-in redirect at /admin')
    t.match(admin.headers.get('location'), /^\/admin\/sign-in/)
    const text = JSON.stringify(app.logs)
    t.notOk(text.includes(key) || text.includes(live), 'no key in the log')
  },
)

t.test('access-token: valid token, refreshed first when expiring, 409 with reconnect URL when broken', async (t) => {
  const app = await startTestApp(t)
  const { grantId } = await connectUser(app)
  const { key } = await newKey(app, ['tokens'])
  const cartaUserId = 'cu_1001'
  const first = await api(app, key, 'GET', `/api/v1/users/${cartaUserId}/access-token`)
  t.equal(first.status, 200)
  t.equal(first.headers.get('cache-control'), 'no-store')
  t.type(first.body.accessToken, 'string')
  t.ok((first.body.expiresAt as number) > app.clock.now(), 'valid now')
  t.ok(Array.isArray(first.body.scopes) && (first.body.scopes as string[]).length > 0)

  expireTokens(app)
  const before = await sandboxStats(app)
  const results = await Promise.all(
    Array.from({ length: 5 }, () => api(app, key, 'GET', `/api/v1/users/${cartaUserId}/access-token`)),
  )
  t.same(
    results.map((r) => r.status),
    [200, 200, 200, 200, 200],
  )
  t.equal((await sandboxStats(app)).refreshes - before.refreshes, 1, 'five concurrent calls, one refresh')
  t.equal(new Set(results.map((r) => r.body.accessToken)).size, 1, 'all get the new token')
  t.not(results[0]!.body.accessToken, first.body.accessToken, 'a new token')
  t.ok((results[0]!.body.expiresAt as number) > app.clock.now(), 'valid again')

  const audits = await auditRows(app.db, 'api.token_returned')
  t.equal(audits.length, 6, 'every token returned is audited')
  t.equal(audits[0]!.grant_id, grantId)
  t.notOk(JSON.stringify(audits).includes(String(first.body.accessToken)), 'no token in the audit trail')

  await breakGrant(app.app.deps, audits[0]!.user_id!, app.clock.now())
  const broken = await api(app, key, 'GET', `/api/v1/users/${cartaUserId}/access-token`)
  isProblem(t, broken, 409, 'api.reconnect_required')
  t.equal(broken.body.reconnectUrl, `${app.url}/carta/connect`)
  const logs = JSON.stringify(app.logs)
  for (const r of [first, ...results]) t.notOk(logs.includes(String(r.body.accessToken)), 'no token in the log')
  t.notOk(logs.includes(key), 'no key in the log')
  const returned = app.logs.filter((l) => l.msg === 'access token returned to API key')
  t.equal(returned.length, 6)
  t.ok(
    returned.every((l) => typeof l.apiKeyId === 'number' && l.reqId),
    "the request's log lines name the key that asked",
  )
})

t.test('reauthorization-links: issued once, then the open one again; bad bodies refused', async (t) => {
  const { app, rollout, userId } = await setup(t)
  const { key } = await newKey(app, ['links'])
  const first = await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', { rolloutId: rollout.id })
  t.equal(first.status, 200)
  t.match(first.body.url, `${app.url}/reauthorize/`)
  t.equal(first.body.reused, false)
  const again = await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', { rolloutId: rollout.id })
  t.equal(again.body.url, first.body.url, 'the open link is reused')
  t.equal(again.body.reused, true)
  const audits = await auditRows(app.db, 'api.link_issued')
  t.equal(audits.length, 2, 'each issue audited')
  t.equal(audits[0]!.user_id, userId)

  isProblem(t, await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', {}), 400, 'request.invalid')
  isProblem(
    t,
    await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', { rolloutId: 2 ** 31 }),
    400,
    'request.invalid',
  )
  isProblem(
    t,
    await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', '{"rolloutId":'),
    400,
    'request.bad',
  )
  isProblem(
    t,
    await api(app, key, 'POST', '/api/v1/users/c-ann/reauthorization-links', { rolloutId: 999 }),
    404,
    'rollout.not_found',
  )
  isProblem(
    t,
    await api(app, key, 'POST', '/api/v1/users/c-bob/reauthorization-links', { rolloutId: rollout.id }),
    404,
    'api.user_not_found',
  )
  const huge = await api(
    app,
    key,
    'POST',
    '/api/v1/users/c-ann/reauthorization-links',
    JSON.stringify({ rolloutId: 1, pad: 'x'.repeat(20_000) }),
  )
  isProblem(t, huge, 413, 'request.too_large')
  const { key: readOnly } = await newKey(app, ['read'])
  isProblem(
    t,
    await api(app, readOnly, 'POST', '/api/v1/users/c-ann/reauthorization-links', { rolloutId: rollout.id }),
    403,
    'api.forbidden',
  )
  const links = await app.db.selectFrom('reauth_links').selectAll().execute()
  t.equal(links.length, 1, 'nothing else written')
})

t.test('per-key rate limit: 429 with Retry-After, other keys unaffected', async (t) => {
  const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock, env: { API_RATE_LIMIT_PER_MINUTE: '3' } })
  const { key } = await newKey(app, ['read'])
  const { key: other } = await newKey(app, ['read'])
  for (let i = 0; i < 3; i++) t.equal((await api(app, key, 'GET', '/api/v1/rollouts')).status, 200)
  const limited = await api(app, key, 'GET', '/api/v1/rollouts')
  isProblem(t, limited, 429, 'api.rate_limited')
  t.match(limited.headers.get('retry-after'), /^\d+$/, 'Retry-After in seconds')
  t.equal((await api(app, other, 'GET', '/api/v1/rollouts')).status, 200, 'another key has its own budget')
})

t.test('API answers carry the security headers pages carry, with a CSP that allows nothing', async (t) => {
  const { app } = await setup(t)
  const { key } = await newKey(app, ['read'])
  const page = await fetch(`${app.url}/healthz`)
  const answers = [
    await api(app, key, 'GET', '/api/v1/users/c-ann'),
    await api(app, null, 'GET', '/api/v1/users/c-ann'),
    await api(app, key, 'GET', '/api/v1/users/nobody'),
  ]
  t.same(
    answers.map((a) => a.status),
    [200, 401, 404],
  )
  const helmetNames = [...page.headers.keys()].filter(
    (name) => name.startsWith('x-') || name.startsWith('cross-origin') || /policy|origin-agent/.test(name),
  )
  t.ok(helmetNames.includes('content-security-policy') && helmetNames.length >= 8, 'pages carry helmet headers')
  for (const answer of answers) {
    for (const name of helmetNames) t.ok(answer.headers.get(name), `${answer.status}: ${name}`)
    t.equal(answer.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'")
    t.equal(answer.headers.get('x-content-type-options'), 'nosniff')
  }
})

t.test('unknown API routes are problem+json 404s', async (t) => {
  const { app } = await setup(t)
  const { key } = await newKey(app, ['read'])
  isProblem(t, await api(app, key, 'GET', '/api/v1/nothing'), 404, 'request.not_found')
})
