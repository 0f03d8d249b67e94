// Scope probes: every outcome against the sandbox over HTTP (tokens minted for demo users), and
// against a fake Carta for the odd answers a real server may give.
import t from 'tap'
import { findProbe, probeOrder, probePath, probeScope, SCOPE_PROBES } from '../../src/carta/probes.js'
import type { CartaAppConfig } from '../../src/config.js'
import { buildSandbox } from '../../src/sandbox/build.js'
import { startTestApp } from '../helpers/app.js'
import { fakeApp, startFakeCarta } from '../helpers/fake-carta.js'
import { basic, control, tokenRequest } from '../sandbox/helpers.js'
import { freePort } from '../helpers/app.js'

const CAP = 'read_issuer_capitalizationtablesummary'

async function mint(
  base: string,
  body: Record<string, unknown>,
): Promise<Array<{ access_token: string; refresh_token: string }>> {
  const res = await fetch(`${base}/_control/mint-grants?include_scopes=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (res.status !== 200) throw new Error(`mint failed: ${res.status} ${await res.text()}`)
  return (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
}

t.test('the catalogue: documented read scopes, GET paths, inputs, order', async (t) => {
  for (const p of SCOPE_PROBES) {
    t.match(p.scope, /^read_/, `${p.scope} is a read scope`)
    t.match(p.path, /^\/v1alpha1\//)
    t.match(p.docs, /^https:\/\/docs\.carta\.com\//)
  }
  t.equal(probePath(findProbe('read_issuer_info')!), '/v1alpha1/issuers?pageSize=1', 'the smallest page')
  t.equal(probePath(findProbe(CAP)!), null, 'needs an issuer id')
  t.equal(probePath(findProbe(CAP)!, { issuerId: 'a/b' }), '/v1alpha1/issuers/a%2Fb/capitalizationTable')
  t.equal(probePath(findProbe(CAP)!, { issuerId: 7 }), '/v1alpha1/issuers/7/capitalizationTable', 'numeric ids')
  t.same(probeOrder([CAP, 'read_user_info', 'readwrite_file_upload', 'read_issuer_info']), [
    'read_issuer_info',
    'read_user_info',
    CAP,
    'readwrite_file_upload',
  ])
})

t.test('against the sandbox over HTTP: held, not_held, unknown, unauthorized, rate_limited', async (t) => {
  const app = await startTestApp(t)
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const [full] = await mint(base, { clientId: v2.clientId, users: ['cu_1002'] })
  const [partial] = await mint(base, { clientId: v2.clientId, users: ['cu_1003'], scopes: ['read_issuer_info'] })

  const user = await probeScope(v2, full!.access_token, 'read_user_info')
  t.match(user, { scope: 'read_user_info', outcome: 'held', status: 200, endpoint: 'GET /v1alpha1/user' })
  t.type(user.at, 'number')
  const issuers = await probeScope(v2, full!.access_token, 'read_issuer_info')
  t.match(issuers, { outcome: 'held', status: 200, endpoint: 'GET /v1alpha1/issuers?pageSize=1' })
  t.same(issuers.learned, { issuerId: 'iss_harbor' }, 'the first issuer, for the dependent probes')
  const cap = await probeScope(v2, full!.access_token, CAP, { issuerId: issuers.learned!.issuerId })
  t.match(cap, { outcome: 'held', status: 200, endpoint: 'GET /v1alpha1/issuers/iss_harbor/capitalizationTable' })

  const notHeld = await probeScope(v2, partial!.access_token, 'read_user_info')
  t.match(notHeld, { outcome: 'not_held', status: 403, reason: 'INSUFFICIENT_SCOPE' })
  const capNotHeld = await probeScope(v2, partial!.access_token, CAP, { issuerId: 'iss_quill' })
  t.match(capNotHeld, { outcome: 'not_held', status: 403, reason: 'INSUFFICIENT_SCOPE' })
  t.match(await probeScope(v2, full!.access_token, 'read_investor_firms'), {
    outcome: 'not_held',
    reason: 'INSUFFICIENT_SCOPE',
    endpoint: 'GET /v1alpha1/investors/firms?pageSize=1',
  })

  t.match(await probeScope(v2, full!.access_token, CAP, { issuerId: 'iss_quill' }), {
    outcome: 'unknown',
    status: 403,
    reason: 'ACCESS_TO_RESOURCE_RESTRICTED',
  })
  t.match(await probeScope(v2, full!.access_token, CAP, { issuerId: 'iss_nope' }), {
    outcome: 'unknown',
    status: 404,
    reason: 'NOT_FOUND',
  })
  t.match(await probeScope(v2, full!.access_token, CAP), {
    outcome: 'unknown',
    status: null,
    endpoint: null,
    reason: 'NEEDS_ISSUER_ID',
  })
  t.match(await probeScope(v2, full!.access_token, 'readwrite_file_upload'), {
    outcome: 'unknown',
    status: null,
    reason: 'NO_PROBE',
  })

  const [expired] = await mint(base, { clientId: v2.clientId, users: ['cu_1001'], expiresInSeconds: -1 })
  const stale = await probeScope(v2, expired!.access_token, 'read_user_info')
  t.match(stale, { outcome: 'unauthorized', status: 401, reason: 'MISSING_OR_INVALID_ACCESS_TOKEN' })
  const refreshed = await tokenRequest(
    base,
    { grant_type: 'refresh_token', refresh_token: expired!.refresh_token },
    basic(v2.clientId, v2.clientSecret),
  )
  t.match(
    await probeScope(v2, refreshed.json.access_token as string, 'read_user_info'),
    { outcome: 'held' },
    'after the refresh',
  )

  await control(base, 'rate-limit', { perSecond: 0, perMinute: 1 })
  t.match(await probeScope(v2, full!.access_token, 'read_user_info'), { outcome: 'held' })
  const limited = await probeScope(v2, full!.access_token, 'read_issuer_info')
  t.match(limited, { outcome: 'rate_limited', status: 429 })
  t.ok(limited.retryAfterMs! > 0 && limited.retryAfterMs! <= 60_000, `wait ${limited.retryAfterMs} ms`)
  t.notOk(
    JSON.stringify([user, issuers, cap, notHeld, stale, limited]).includes(full!.access_token),
    'no token in evidence',
  )
})

t.test('every probe in the catalogue is answered truthfully by the sandbox', async (t) => {
  const port = await freePort()
  const scopes = SCOPE_PROBES.map((p) => p.scope)
  const sandbox = await buildSandbox({
    clients: [
      { clientId: 'all-scopes', clientSecret: 's', name: 'All', scopes, redirectUris: ['http://127.0.0.1:1/cb'] },
    ],
    // Sixteen calls in a row would trip Carta's 10/s (on by default in buildSandbox).
    rateLimit: { perSecond: 0, perMinute: 0 },
    logLevel: 'silent',
  })
  await sandbox.listen({ host: '127.0.0.1', port })
  t.teardown(() => sandbox.close())
  const base = `http://127.0.0.1:${port}`
  const app: CartaAppConfig = { ...fakeApp({ url: base }, scopes), clientId: 'all-scopes' }
  const [all] = await mint(base, { clientId: 'all-scopes', users: ['cu_1006'] })
  const [none] = await mint(base, { clientId: 'all-scopes', users: ['cu_1006'], scopes: ['read_user_info'] })
  const issuerId = (await probeScope(app, all!.access_token, 'read_issuer_info')).learned?.issuerId
  t.equal(issuerId, 'iss_lumen')
  for (const scope of probeOrder(scopes)) {
    t.match(await probeScope(app, all!.access_token, scope, { issuerId }), { outcome: 'held', status: 200 }, scope)
    if (scope !== 'read_user_info')
      t.match(
        await probeScope(app, none!.access_token, scope, { issuerId }),
        { outcome: 'not_held', status: 403 },
        scope,
      )
  }
  const page = await fetch(`${base}/v1alpha1/issuers/iss_lumen/shareClasses`, {
    headers: { authorization: `Bearer ${all!.access_token}` },
  })
  const classes = (await page.json()) as { shareClasses: Array<{ name: string }> }
  t.same(
    classes.shareClasses.map((c) => c.name),
    ['Common', 'Series Seed Preferred', 'Series A Preferred'],
    'share class names live in List Share Classes',
  )
})

t.test('odd answers from a fake Carta', async (t) => {
  const fake = await startFakeCarta(t)
  const app = fakeApp(fake)
  fake.user = () => ({ raw: '<html>ok</html>', contentType: 'text/html' })
  t.match(
    await probeScope(app, 'tok', 'read_user_info'),
    { outcome: 'held', status: 200 },
    'the status is the evidence',
  )
  fake.user = () => ({
    status: 403,
    raw: '',
    headers: { 'www-authenticate': 'Bearer error="insufficient_scope", scope="read_user_info"' },
  })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'not_held', reason: 'INSUFFICIENT_SCOPE' })
  fake.user = () => ({ status: 403, body: { error: 'insufficient_scope' } })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'not_held' }, 'RFC 6750 in JSON')
  fake.user = () => ({ status: 403, raw: 'denied', contentType: 'text/plain' })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'unknown', status: 403, reason: 'FORBIDDEN' })
  fake.user = () => ({ status: 403, body: { code: 7, details: [{ reason: 'MISSING_INTERNAL_PERMISSION' }] } })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'unknown', reason: 'MISSING_INTERNAL_PERMISSION' })
  const now = Date.UTC(2025, 0, 1)
  fake.user = () => ({
    status: 429,
    body: { message: 'API rate limit exceeded' },
    headers: { 'x-ratelimit-reset': String(now / 1000 + 9) },
  })
  t.match(await probeScope(app, 'tok', 'read_user_info', { now: () => now }), {
    outcome: 'rate_limited',
    retryAfterMs: 9000,
    at: now,
  })
  fake.user = () => ({ status: 429, raw: '' })
  const noWait = await probeScope(app, 'tok', 'read_user_info')
  t.equal(noWait.outcome, 'rate_limited')
  t.notOk('retryAfterMs' in noWait, 'no wait invented')
  fake.user = () => ({ status: 503, raw: 'down' })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'unknown', status: 503, reason: 'UNAVAILABLE' })
  fake.user = () => ({ status: 400, body: { code: 3, message: 'bad' } })
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'unknown', status: 400, reason: 'HTTP_400' })
  fake.user = () => 'hang'
  t.match(await probeScope(app, 'tok', 'read_user_info', { timeoutMs: 150 }), {
    outcome: 'unknown',
    status: null,
    reason: 'TIMEOUT',
  })
  fake.issuers = () => ({ body: { issuers: [{ id: 123456789012, legalName: 'Numeric' }] } })
  t.same((await probeScope(app, 'tok', 'read_issuer_info')).learned, { issuerId: '123456789012' })
  fake.issuers = () => ({ body: { unexpected: true } })
  const odd = await probeScope(app, 'tok', 'read_issuer_info')
  t.equal(odd.outcome, 'held')
  t.notOk('learned' in odd, 'no issuer id from an odd body')
  await fake.close()
  t.match(await probeScope(app, 'tok', 'read_user_info'), { outcome: 'unknown', status: null, reason: 'UNREACHABLE' })
})
