// The sandbox's v1alpha1 API (Carta's documented paths, shapes and error bodies, with RFC 6750
// challenges as an extra) and its controls: stats, clock, fail, reset, and the home page.
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import type { capitalizationTable } from '../../src/sandbox/plugin.js'
import { startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { api, basic, control, getTokens, revokeRequest, tokenRequest } from './helpers.js'

const ERROR_INFO = 'type.googleapis.com/carta.proto.publicapi.errors.v1alpha1.ErrorInfo'

t.test('API and controls', async (t) => {
  const clock = new ManualClock(Date.UTC(2025, 2, 3, 12, 0, 0))
  const app = await startTestApp(t, { clock })
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const redirectUri = `${app.url}/carta/callback`
  const auth = basic(v2.clientId, v2.clientSecret)

  t.test('user, issuers and capitalizationTable with the right scopes, shaped as Carta documents', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri, { userId: 'cu_1002' })
    const user = await api(base, '/v1alpha1/user', tokens.access_token)
    t.equal(user.status, 200)
    t.same(user.json, { id: 'cu_1002', email: 'ben.hartley@harbor.example', firstName: 'Ben', lastName: 'Hartley' })
    const issuers = await api(base, '/v1alpha1/issuers', tokens.access_token)
    t.strictSame(
      issuers.json,
      {
        issuers: [
          {
            id: 'iss_harbor',
            legalName: 'Harbor Analytics Corp.',
            doingBusinessAsName: 'Harbor',
            website: 'https://harbor.example',
          },
          {
            id: 'iss_lumen',
            legalName: 'Lumen Robotics, Inc.',
            doingBusinessAsName: 'Lumen',
            website: 'https://lumen.example',
          },
        ],
      },
      'the last page carries no nextPageToken',
    )
    const one = await api(base, '/v1alpha1/issuers/iss_lumen', tokens.access_token)
    t.equal(one.status, 200)
    t.equal((one.json.issuer as Record<string, unknown>).legalName, 'Lumen Robotics, Inc.')

    const cap = await api(base, '/v1alpha1/issuers/iss_harbor/capitalizationTable', tokens.access_token)
    t.equal(cap.status, 200)
    const table = cap.json.capitalizationTable as ReturnType<typeof capitalizationTable>
    t.equal(table.issuerId, 'iss_harbor')
    t.same(table.asOfDate, { value: '2025-03-03' }, 'dated by the sandbox clock, as a Carta date')
    t.same(table.summary.outstandingShares, { value: '11600000.00' }, 'decimals as strings in {"value"}')
    t.same(table.summary.fullyDilutedShares, {
      value: String((8_500_000 + 3_100_000 + 1_900_000 + 150_000).toFixed(2)),
    })
    t.equal(table.summary.cashRaised.currencyCode.value, 'USD')
    t.equal(table.shareClassSummaries.length, 2)
    t.same(Object.keys(table.shareClassSummaries[0]!).sort(), [
      'cashRaised',
      'fullyDilutedShares',
      'optionPoolIds',
      'outstandingShares',
      'shareClassId',
    ])
    t.equal(table.optionPoolSummaries[0]!.name, '2019 Stock Plan')
    t.equal(table.warrantBlockSummaries.length, 1)
    t.same(table.noteBlockSummaries, [])

    const hidden = await api(base, '/v1alpha1/issuers/iss_quill/capitalizationTable', tokens.access_token)
    t.equal(hidden.status, 403, 'an issuer the user did not grant')
    t.same(hidden.json, {
      code: 7,
      message: 'Access to resource denied',
      details: [{ '@type': ERROR_INFO, reason: 'ACCESS_TO_RESOURCE_RESTRICTED', metadata: {} }],
    })
    const nope = await api(base, '/v1alpha1/issuers/nope/capitalizationTable', tokens.access_token)
    t.equal(nope.status, 404)
    t.same(nope.json, { code: 5, message: 'Resource not found' }, "Carta's 404 body")
    const old = await fetch(`${base}/v1alpha1/issuers/iss_harbor/capitalization-table-summary`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    })
    t.equal(old.status, 404, 'the undocumented path is not served')
  })

  t.test('List Issuers pages: pageSize 1 with nextPageToken, bad values 400', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri, { userId: 'cu_1004' })
    const first = await api(base, '/v1alpha1/issuers?pageSize=1', tokens.access_token)
    t.equal(first.status, 200)
    t.same(
      (first.json.issuers as Array<{ id: string }>).map((i) => i.id),
      ['iss_northwind'],
    )
    t.type(first.json.nextPageToken, 'string')
    const second = await api(
      base,
      `/v1alpha1/issuers?pageSize=1&pageToken=${first.json.nextPageToken}`,
      tokens.access_token,
    )
    t.same(
      (second.json.issuers as Array<{ id: string }>).map((i) => i.id),
      ['iss_tidepool'],
    )
    const third = await api(
      base,
      `/v1alpha1/issuers?pageSize=1&pageToken=${second.json.nextPageToken}`,
      tokens.access_token,
    )
    t.same(
      (third.json.issuers as Array<{ id: string }>).map((i) => i.id),
      ['iss_harbor'],
    )
    t.notOk('nextPageToken' in third.json)
    t.equal(
      ((await api(base, '/v1alpha1/issuers?pageSize=500', tokens.access_token)).json.issuers as unknown[]).length,
      3,
      'above 50 is coerced, not refused',
    )
    for (const bad of ['pageSize=-1', 'pageSize=two', 'pageToken=garbage!', 'pageToken=eyJsIjoieCIsIm8iOjF9']) {
      const res = await api(base, `/v1alpha1/issuers?${bad}`, tokens.access_token)
      t.equal(res.status, 400, bad)
      t.equal(res.json.code, 3, `${bad}: INVALID_ARGUMENT`)
    }
  })

  t.test("401 and 403 in Carta's error format, with RFC 6750 challenges as an extra", async (t) => {
    const none = await api(base, '/v1alpha1/user')
    t.equal(none.status, 401)
    t.same(none.json, {
      code: 16,
      message: 'Unauthorized',
      details: [{ '@type': ERROR_INFO, reason: 'MISSING_OR_INVALID_ACCESS_TOKEN', metadata: {} }],
    })
    t.match(none.challenge, /^Bearer realm="Carta sandbox"$/, 'no error code when no credentials were sent (§3.1)')
    const unknown = await api(base, '/v1alpha1/user', 'not-a-token')
    t.equal(unknown.status, 401)
    t.match(unknown.challenge, /^Bearer .*error="invalid_token"/)
    t.equal((unknown.json.details as Array<{ reason: string }>)[0]!.reason, 'MISSING_OR_INVALID_ACCESS_TOKEN')

    const partial = await getTokens(new Agent(), base, v2, redirectUri, { grant: ['read_user_info'] })
    const issuers = await api(base, '/v1alpha1/issuers', partial.access_token)
    t.equal(issuers.status, 403)
    t.same(issuers.json, {
      code: 7,
      message: 'Access to resource denied',
      details: [{ '@type': ERROR_INFO, reason: 'INSUFFICIENT_SCOPE', metadata: {} }],
    })
    t.match(issuers.challenge, /^Bearer .*error="insufficient_scope", scope="read_issuer_info"/)
    const cap = await api(base, '/v1alpha1/issuers/iss_quill/capitalizationTable', partial.access_token)
    t.equal(cap.status, 403)
    t.equal(
      (cap.json.details as Array<{ reason: string }>)[0]!.reason,
      'INSUFFICIENT_SCOPE',
      'the scope is checked before the issuer',
    )
    t.match(cap.challenge, /scope="read_issuer_capitalizationtablesummary"/)

    t.equal(
      (await api(base, '/v1alpha1/user', partial.refresh_token)).status,
      401,
      'a refresh token is not an access token',
    )
    await revokeRequest(base, { token: partial.access_token }, auth)
    const revoked = await api(base, '/v1alpha1/user', partial.access_token)
    t.equal(revoked.status, 401)
    t.match(revoked.challenge, /error="invalid_token"/)
  })

  t.test('access tokens expire after one hour of sandbox time; the clock control moves it', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri)
    clock.advance(3599_000)
    t.equal((await api(base, '/v1alpha1/user', tokens.access_token)).status, 200, 'valid just before the hour')
    const moved = await control(base, 'clock', { advanceSeconds: 1 })
    t.equal(moved.status, 200)
    t.equal(moved.json.offsetSeconds, 1)
    const expired = await api(base, '/v1alpha1/user', tokens.access_token)
    t.equal(expired.status, 401)
    t.match(expired.challenge, /error="invalid_token"/)
    const stats = await control(base, 'stats')
    t.equal(stats.json.now, clock.now() + 1000, 'sandbox time = app clock + offset')
    t.equal(
      (stats.json.tokens as Array<Record<string, unknown>>).find(
        (x) => x.kind === 'access' && x.issuedAt === clock.now() - 3599_000,
      )?.status,
      'expired',
    )
    const refreshed = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
      auth,
    )
    t.equal(refreshed.status, 200, 'refresh tokens do not expire with the hour')
    t.equal((await api(base, '/v1alpha1/user', refreshed.json.access_token as string)).status, 200)
    t.equal((await control(base, 'clock', { advanceSeconds: 'soon' })).status, 400)
  })

  t.test('fail control: the next n calls fail, then service resumes', async (t) => {
    const tokens = await getTokens(new Agent(), base, v2, redirectUri)
    t.equal((await control(base, 'fail', { endpoint: 'token', status: 503, times: 2 })).status, 200)
    const form = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }
    const f1 = await tokenRequest(base, form, auth)
    const f2 = await tokenRequest(base, form, auth)
    t.equal(f1.status, 503)
    t.equal(f1.json.error, 'temporarily_unavailable')
    t.equal(f2.status, 503)
    const ok = await tokenRequest(base, form, auth)
    t.equal(ok.status, 200, 'the failed calls did not spend the refresh token')

    await control(base, 'fail', { endpoint: 'revoke', status: 500, times: 1 })
    t.equal((await revokeRequest(base, { token: ok.json.refresh_token as string }, auth)).status, 500)
    t.equal(
      (await api(base, '/v1alpha1/user', ok.json.access_token as string)).status,
      200,
      'the failed revocation revoked nothing',
    )
    t.equal((await revokeRequest(base, { token: ok.json.refresh_token as string }, auth)).status, 200)
    t.equal((await api(base, '/v1alpha1/user', ok.json.access_token as string)).status, 401)

    const fresh = await getTokens(new Agent(), base, v2, redirectUri)
    await control(base, 'fail', { endpoint: 'api', status: 502, times: 1 })
    t.equal((await api(base, '/v1alpha1/user', fresh.access_token)).status, 502)
    t.equal((await api(base, '/v1alpha1/user', fresh.access_token)).status, 200)
    await control(base, 'fail', { endpoint: 'api', status: 403, times: 1, reason: 'MISSING_INTERNAL_PERMISSION' })
    const refused = await api(base, '/v1alpha1/user', fresh.access_token)
    t.equal(refused.status, 403)
    t.equal((refused.json.details as Array<{ reason: string }>)[0]!.reason, 'MISSING_INTERNAL_PERMISSION')
    t.equal((await control(base, 'fail', { endpoint: 'api', status: 403, times: 1, reason: 'lower case' })).status, 400)

    t.equal((await control(base, 'fail', { endpoint: 'everything', status: 503, times: 1 })).status, 400)
    t.equal((await control(base, 'fail', { endpoint: 'api', status: 200, times: 1 })).status, 400)
    const stats = await control(base, 'stats')
    t.equal(stats.json.injectedFailures, 5)
  })

  t.test('controls are JSON-only', async (t) => {
    const form = await fetch(`${base}/_control/clock`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'advanceSeconds=3600',
    })
    t.equal(form.status, 415)
    const text = await fetch(`${base}/_control/reset`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    })
    t.equal(text.status, 415)
    const stats = await control(base, 'stats')
    t.not(stats.json.tokenRequests, 0, 'nothing was reset')
  })

  t.test('stats count exactly, and reset clears everything', async (t) => {
    t.equal((await control(base, 'reset', {})).status, 200)
    const empty = await control(base, 'stats')
    t.equal(empty.json.tokenRequests, 0)
    t.equal(empty.json.clockOffsetSeconds, 0)
    t.same(empty.json.tokens, [])
    const tokens = await getTokens(new Agent(), base, v2, redirectUri, { userId: 'cu_1005' })
    await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, auth)
    await revokeRequest(base, { token: tokens.access_token }, auth)
    const stats = await control(base, 'stats')
    t.match(stats.json, {
      tokenRequests: 2,
      codeExchanges: 1,
      refreshes: 1,
      revocations: 1,
      signIns: 1,
      consents: 1,
      tokenErrors: 0,
    })
    const list = stats.json.tokens as Array<Record<string, unknown>>
    t.equal(list.length, 4)
    t.same(
      list.map((x) => [x.kind, x.status, x.userId, x.clientId]),
      [
        ['access', 'revoked', 'cu_1005', v2.clientId],
        ['refresh', 'rotated', 'cu_1005', v2.clientId],
        ['access', 'live', 'cu_1005', v2.clientId],
        ['refresh', 'live', 'cu_1005', v2.clientId],
      ],
    )
    for (const entry of list) t.notOk('value' in entry, 'no token values')
  })

  t.test('home page: users, clients, and the clock button (form, token-protected)', async (t) => {
    const agent = new Agent()
    const home = await agent.get(`${base}/`)
    t.equal(home.status, 200)
    t.match(home.text, /Demo users/)
    t.match(home.text, /cu_1001/)
    t.match(home.text, new RegExp(v2.clientId))
    t.match(home.text, new RegExp(redirectUri.replace(/[.?]/g, '\\$&')))
    t.notOk(home.text.includes(v2.clientSecret), 'no client secret on the page')
    const before = (await control(base, 'stats')).json.clockOffsetSeconds as number
    const forged = await agent.post(`${base}/clock`, { form_token: 'guess' })
    t.equal(forged.status, 403)
    const res = await agent.post(`${base}/clock`, { form_token: hiddenField(home.text, 'form_token') })
    t.equal(res.status, 303)
    t.equal(res.location, '/sandbox/')
    t.equal((await control(base, 'stats')).json.clockOffsetSeconds, before + 3600)
    const after = await agent.get(`${base}/`)
    t.match(after.text, /moved forward 1 h/)
  })
})
