// Be liberal in what we accept (RFC 6749): odd but valid token responses and API shapes.
import t from 'tap'
import { CartaApiError, parseCapTableSummary, parseIssuerPage, parseIssuers, parseUser } from '../../src/carta/api.js'
import { Agent } from '../helpers/browser-agent.js'
import { startTestApp } from '../helpers/app.js'
import { startFakeCarta } from '../helpers/fake-carta.js'
import { beginConnect, callback } from '../flows/helpers.js'

t.test('token_type "bearer" lower-case, expires_in as a string, extra fields, no scope', async (t) => {
  const fake = await startFakeCarta(t)
  const app = await startTestApp(t, { env: fake.env() })
  fake.token = () => ({
    body: {
      access_token: 'A1',
      token_type: 'bearer',
      expires_in: '120',
      refresh_token: 'R1',
      something_else: { nested: true },
    },
  })
  const agent = new Agent()
  const { state, authorizeUrl } = await beginConnect(agent, app.url)
  t.equal(authorizeUrl.searchParams.get('scope'), 'read_issuer_info read_user_info', 'space-separated scopes')
  t.equal(authorizeUrl.searchParams.get('client_id'), fake.clientId)
  const res = await callback(agent, app.url, { code: 'c0de', state })
  t.equal(res.status, 303)
  const request = fake.tokenRequests[0]!
  // RFC 6749 §2.3.1: id and secret are form-urlencoded, joined by ":", then base64 (HTTP Basic).
  const basic = /^Basic (.+)$/.exec(request.authorization ?? '')?.[1] ?? ''
  const [id, secret] = Buffer.from(basic, 'base64')
    .toString('utf8')
    .split(':')
    .map((p) => decodeURIComponent(p.replace(/\+/g, ' ')))
  t.same([id, secret], [fake.clientId, fake.clientSecret], 'client_secret_basic')
  t.equal(request.form.get('grant_type'), 'authorization_code')
  t.equal(request.form.get('code'), 'c0de')
  t.ok((request.form.get('code_verifier') ?? '').length >= 43, 'PKCE verifier sent')
  t.equal(request.form.get('redirect_uri'), `${app.url}/carta/callback`)
  t.equal(request.form.get('client_secret'), null, 'secret not in the body')
  const grant = await app.db.selectFrom('grants').selectAll().executeTakeFirstOrThrow()
  t.equal(grant.scopes_source, 'assumed')
  const tokens = await app.db.selectFrom('grant_tokens').selectAll().executeTakeFirstOrThrow()
  t.equal(tokens.access_expires_at, app.clock.now() + 120_000, 'expires_in "120" understood')
  t.equal(tokens.token_type, 'Bearer')
  t.equal(fake.apiRequests[0]?.authorization, 'Bearer A1', 'user fetched with the new token')
})

t.test('expires_in absent: no expiry recorded; scope listed in another order', async (t) => {
  const fake = await startFakeCarta(t)
  const app = await startTestApp(t, { env: fake.env() })
  fake.token = () => ({ body: { access_token: 'A2', token_type: 'BEARER', scope: 'read_user_info  read_issuer_info' } })
  const agent = new Agent()
  const { state } = await beginConnect(agent, app.url)
  t.equal((await callback(agent, app.url, { code: 'x', state })).status, 303)
  const grant = await app.db.selectFrom('grants').selectAll().executeTakeFirstOrThrow()
  t.equal(grant.scopes_source, 'reported')
  t.equal(grant.granted_scopes, 'read_issuer_info read_user_info', 'compared and stored as a set')
  const tokens = await app.db.selectFrom('grant_tokens').selectAll().executeTakeFirstOrThrow()
  t.equal(tokens.access_expires_at, null)
  t.equal(tokens.refresh_token, null)
})

t.test('user and issuer shapes', async (t) => {
  t.same(parseUser({ id: 12, email: 'a@b.c' }), {
    id: '12',
    email: 'a@b.c',
    firstName: null,
    lastName: null,
    name: null,
  })
  t.equal(parseUser({ userId: 'u1' }).id, 'u1')
  t.equal(parseUser({ user_id: 'u2', first_name: 'A', last_name: 'B' }).name, 'A B')
  t.equal(parseUser({ user: { id: 'u3' } }).id, 'u3')
  t.throws(() => parseUser({ email: 'x' }), CartaApiError)
  t.throws(() => parseUser('nope'), CartaApiError)
  t.same(parseIssuers({ issuers: [{ id: 1, legalName: 'A' }] }), [{ id: '1', legalName: 'A' }])
  t.same(parseIssuers({ results: [{ id: 'x', legal_name: 'B' }] }), [{ id: 'x', legalName: 'B' }])
  t.same(parseIssuers({ data: [{ id: 'y', name: 'C' }, 'junk'] }), [{ id: 'y', legalName: 'C' }])
  t.throws(() => parseIssuers({ nothing: true }), CartaApiError)
})

t.test('cap table shapes: nested or flat, numbers as strings, wrappers or plain, several list names', async (t) => {
  const carta = parseCapTableSummary({
    capitalizationTable: {
      issuerId: 7,
      asOfDate: '2024-06-30T00:00:00Z',
      summary: { outstandingShares: '300', fullyDilutedShares: { value: '350.5' } },
      shareClassSummaries: [
        { shareClassID: 10, outstandingShares: { value: '100.00' }, fullyDilutedShares: '100' },
        { shareClassId: '11', name: 'Series A', outstandingShares: 200, fullyDilutedShares: 200 },
      ],
    },
  })
  t.equal(carta.issuerId, '7', 'numeric issuer id')
  t.equal(carta.asOfDate, '2024-06-30', 'date string accepted')
  t.same(
    carta.shareClasses.map((r) => [r.id, r.name, r.outstanding, r.fullyDiluted]),
    [
      ['10', null, 100, 100],
      ['11', 'Series A', 200, 200],
    ],
  )
  t.same(carta.totals, { outstanding: 300, fullyDiluted: 350.5, cashRaised: null })

  const flat = parseCapTableSummary({
    legalName: 'Flat Inc.',
    currency: 'EUR',
    shareClasses: [
      { name: 'Common', outstanding: '1,000', fully_diluted_shares: '1000' },
      { className: 'Preferred', outstanding_shares: '500', fullyDiluted: 600 },
      'junk',
    ],
  })
  t.equal(flat.issuerName, 'Flat Inc.')
  t.equal(flat.currency, 'EUR')
  t.same(
    flat.shareClasses.map((r) => [r.name, r.outstanding, r.fullyDiluted]),
    [
      ['Common', null, 1000],
      ['Preferred', 500, 600],
    ],
    '"1,000" is not guessed at; junk rows skipped',
  )
  t.same(flat.totals, { outstanding: 500, fullyDiluted: 1600, cashRaised: null }, 'totals summed when absent')

  t.equal(parseCapTableSummary({ classes: [{ name: 'A', outstanding: 1 }] }).shareClasses.length, 1)
  t.equal(
    parseCapTableSummary({ capitalization_table: { share_class_summaries: [{ id: 1 }] } }).shareClasses[0]!.id,
    '1',
  )
  t.equal(
    parseCapTableSummary({ summary: { shareClasses: [{ name: 'Old', outstanding: 5 }] } }).shareClasses[0]!.name,
    'Old',
    'the older shape with the table under "summary"',
  )
  const totalsOnly = parseCapTableSummary({ capitalizationTable: { summary: { outstandingShares: { value: '9' } } } })
  t.same(totalsOnly.shareClasses, [])
  t.equal(totalsOnly.totals.outstanding, 9, 'a table with totals only is still a table')
  t.throws(() => parseCapTableSummary({ nothing: true }), CartaApiError)
  t.throws(() => parseCapTableSummary([1, 2]), CartaApiError)
  t.throws(() => parseCapTableSummary('nope'), CartaApiError)
})

t.test('issuer pages: nextPageToken read in either spelling; ids as numbers or strings', async (t) => {
  t.same(parseIssuerPage({ issuers: [{ id: 7, legalName: 'A' }], nextPageToken: 'n' }), {
    issuers: [{ id: '7', legalName: 'A' }],
    nextPageToken: 'n',
  })
  t.equal(parseIssuerPage({ issuers: [], next_page_token: 'x' }).nextPageToken, 'x')
  t.equal(parseIssuerPage({ issuers: [], nextPageToken: '' }).nextPageToken, null, 'empty means last page')
  t.same(parseIssuerPage([{ id: 'z', doingBusinessAsName: 'Zed' }]).issuers, [{ id: 'z', legalName: 'Zed' }])
})

t.test('issuer API failure: the home page still renders with a notice', async (t) => {
  const fake = await startFakeCarta(t)
  const app = await startTestApp(t, { env: fake.env() })
  fake.issuers = () => ({ status: 502, raw: 'bad gateway', contentType: 'text/plain' })
  const agent = new Agent()
  const { state } = await beginConnect(agent, app.url)
  await callback(agent, app.url, { code: 'x', state })
  const home = await agent.get(`${app.url}/`)
  t.equal(home.status, 200)
  t.match(home.text, /could not list your companies/)
  t.match(home.text, /Ada Lovelace/)
  t.ok(
    app.logs.some((l) => l.level === 40 && l.msg === 'issuer list unavailable'),
    'warn logged',
  )
})

t.test('not connected: connect button and app picker', async (t) => {
  const fake = await startFakeCarta(t)
  const app = await startTestApp(t, { env: fake.env() })
  const home = await new Agent().get(`${app.url}/`)
  t.equal(home.status, 200)
  t.match(
    home.text,
    /<form method="get" action="\/carta\/connect"[^>]*>[\s\S]*<button type="submit">Connect Carta<\/button>/,
  )
  t.notMatch(home.text, /name="app"/, 'one active app: no picker')
  const sandbox = await startTestApp(t)
  const page = await new Agent().get(`${sandbox.url}/`)
  t.match(page.text, /<option value="production-v1"/, 'several active apps: a picker')
  t.match(page.text, /<option value="production-v2" selected/)
  const form = /<form method="get" action="\/carta\/connect"[\s\S]*?<\/form>/.exec(page.text)?.[0] ?? ''
  t.match(form, 'name="app"', 'the picker ...')
  t.match(form, '<button type="submit">Connect Carta</button>', '... and the Connect button are one form')
  t.notMatch(page.text, 'href="/carta/connect"', 'no button that ignores the picker')
})
