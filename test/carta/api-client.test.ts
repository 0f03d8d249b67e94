// The Carta API client against a programmable fake Carta: Carta's documented error bodies, RFC 6750
// challenges, rate-limit headers in their several spellings, 404 naming the resource, paging, and
// the failures a real server can produce (5xx, timeouts, non-JSON).
import t from 'tap'
import {
  CartaApiError,
  fetchCapTableSummary,
  fetchUser,
  listIssuers,
  parseRateLimit,
  waitMs,
} from '../../src/carta/api.js'
import { type FakeCarta, fakeApp as appFor, startFakeCarta } from '../helpers/fake-carta.js'

const ERROR_INFO = 'type.googleapis.com/carta.proto.publicapi.errors.v1alpha1.ErrorInfo'
const TOKEN = 'secret-access-token-value'

async function failure(p: Promise<unknown>): Promise<CartaApiError> {
  try {
    await p
  } catch (err) {
    if (err instanceof CartaApiError) return err
    throw err
  }
  throw new Error('expected a CartaApiError')
}

const cartaError = (code: number, message: string, reason?: string) => ({
  code,
  message,
  ...(reason ? { details: [{ '@type': ERROR_INFO, reason, metadata: {} }] } : {}),
})

t.test('403: INSUFFICIENT_SCOPE from Carta, RFC 6750 header or JSON error; other reasons kept', async (t) => {
  const fake: FakeCarta = await startFakeCarta(t)
  const app = appFor(fake)
  fake.user = () => ({ status: 403, body: cartaError(7, 'Access to resource denied', 'INSUFFICIENT_SCOPE') })
  let err = await failure(fetchUser(app, TOKEN))
  t.equal(err.kind, 'forbidden')
  t.equal(err.details.reason, 'INSUFFICIENT_SCOPE')
  t.equal(err.details.code, 7)
  t.equal(err.details.status, 403)

  fake.user = () => ({
    status: 403,
    raw: '',
    headers: { 'www-authenticate': 'Bearer realm="x", error="insufficient_scope", scope="read_user_info"' },
  })
  err = await failure(fetchUser(app, TOKEN))
  t.equal(err.details.reason, 'INSUFFICIENT_SCOPE', 'RFC 6750 challenge understood')
  t.equal(err.details.scope, 'read_user_info')

  fake.user = () => ({ status: 403, body: { error: 'insufficient_scope' } })
  t.equal((await failure(fetchUser(app, TOKEN))).details.reason, 'INSUFFICIENT_SCOPE', 'RFC 6750 JSON error')

  fake.user = () => ({ status: 403, body: cartaError(7, 'Access to resource denied', 'ACCESS_TO_RESOURCE_RESTRICTED') })
  err = await failure(fetchUser(app, TOKEN))
  t.equal(err.kind, 'forbidden')
  t.equal(err.details.reason, 'ACCESS_TO_RESOURCE_RESTRICTED')

  fake.user = () => ({ status: 403, raw: 'Forbidden', contentType: 'text/plain' })
  err = await failure(fetchUser(app, TOKEN))
  t.equal(err.kind, 'forbidden')
  t.equal(err.details.reason, undefined, 'no reason invented')
})

t.test('401 is unauthorized; 404 names the missing resource and its path, never the token', async (t) => {
  const fake = await startFakeCarta(t)
  const app = appFor(fake)
  fake.user = () => ({ status: 401, body: cartaError(16, 'Unauthorized', 'MISSING_OR_INVALID_ACCESS_TOKEN') })
  const unauthorized = await failure(fetchUser(app, TOKEN))
  t.equal(unauthorized.kind, 'unauthorized')
  t.equal(unauthorized.details.reason, 'MISSING_OR_INVALID_ACCESS_TOKEN')

  const notFound = await failure(fetchCapTableSummary(app, TOKEN, 'a/b c?d'))
  t.equal(notFound.kind, 'not_found')
  t.equal(notFound.details.resource, 'issuer cap table')
  t.equal(notFound.details.path, '/v1alpha1/issuers/a%2Fb%20c%3Fd/capitalizationTable', 'the id is URL-encoded')
  t.equal(notFound.details.code, 5)
  t.match(notFound.message, /no such issuer cap table/)
  t.notMatch(JSON.stringify({ ...notFound.details, message: notFound.message }), TOKEN)
  t.equal(fake.apiRequests.at(-1)?.path, '/v1alpha1/issuers/a%2Fb%20c%3Fd/capitalizationTable')
  t.equal(fake.apiRequests.at(-1)?.authorization, `Bearer ${TOKEN}`)
})

t.test('429: the wait comes from Retry-After, RateLimit-Reset or X-RateLimit-Reset, seconds or epoch', async (t) => {
  const fake = await startFakeCarta(t)
  const app = appFor(fake)
  const now = Date.UTC(2025, 0, 1, 12, 0, 0)
  const cases: Array<[string, Record<string, string>, number | undefined]> = [
    ['Retry-After seconds', { 'retry-after': '7' }, 7000],
    ['Retry-After HTTP-date', { 'retry-after': new Date(now + 30_000).toUTCString() }, 30_000],
    [
      'RateLimit-Reset seconds (Carta)',
      { 'ratelimit-limit': '10', 'ratelimit-remaining': '0', 'ratelimit-reset': '1' },
      1000,
    ],
    ['X-RateLimit-Reset epoch seconds', { 'x-ratelimit-reset': String(now / 1000 + 42) }, 42_000],
    ['X-RateLimit-Reset epoch ms', { 'x-ratelimit-reset': String(now + 5_000) }, 5_000],
    ['Retry-After wins over RateLimit-Reset', { 'retry-after': '2', 'ratelimit-reset': '9' }, 2000],
    ['IETF structured RateLimit', { ratelimit: 'limit=10, remaining=0, reset=4' }, 4000],
    ['a reset in the past waits 0', { 'x-ratelimit-reset': String(now / 1000 - 10) }, 0],
    ['no header: no wait known', {}, undefined],
    ['garbage: no wait known', { 'retry-after': 'soon-ish' }, undefined],
  ]
  for (const [name, headers, expected] of cases) {
    fake.user = () => ({ status: 429, body: { message: 'API rate limit exceeded' }, headers })
    const err = await failure(fetchUser(app, TOKEN, { now }))
    t.equal(err.kind, 'rate_limited', name)
    t.equal(err.details.retryAfterMs, expected, name)
  }
  const info = parseRateLimit(
    new Headers({
      'ratelimit-limit': '10',
      'ratelimit-remaining': '9',
      'ratelimit-reset': '1',
      'x-ratelimit-remaining-minute': '299',
    }),
    now,
  )
  t.same(info, { limit: 10, remaining: 9, resetMs: 1000, retryAfterMs: 1000 }, "Carta's success headers")
  t.equal(waitMs('1.5', now, false), 1500)
  t.equal(waitMs(new Date(now + 1000).toUTCString(), now, false), null, 'a date only where one is allowed')
})

t.test('5xx and timeouts are unavailable; non-JSON and odd statuses are malformed', async (t) => {
  const fake = await startFakeCarta(t)
  const app = appFor(fake)
  for (const status of [500, 502, 503, 504]) {
    fake.user = () => ({ status, body: cartaError(13, 'Internal error') })
    const err = await failure(fetchUser(app, TOKEN))
    t.equal(err.kind, 'unavailable', `${status}`)
    t.equal(err.details.status, status)
  }
  fake.user = () => 'hang'
  const slow = await failure(fetchUser(app, TOKEN, { timeoutMs: 200 }))
  t.equal(slow.kind, 'unavailable')
  t.equal(slow.details.timeout, true)
  fake.user = () => ({ raw: '{"id": ', contentType: 'application/json' })
  t.equal((await failure(fetchUser(app, TOKEN))).kind, 'malformed')
  fake.user = () => ({ status: 418, body: {} })
  t.equal((await failure(fetchUser(app, TOKEN))).kind, 'malformed')
  fake.user = () => ({ body: { user: { id: 1234567890123, email: 'a@b.c' } } })
  t.equal((await fetchUser(app, TOKEN)).id, '1234567890123', 'numeric ids become strings')
  await fake.close()
  const down = await failure(fetchUser(app, TOKEN))
  t.equal(down.kind, 'unavailable', 'connection refused')
})

t.test('List Issuers: pageSize=50, follows nextPageToken, stops on a repeated token or after maxPages', async (t) => {
  const fake = await startFakeCarta(t)
  const app = appFor(fake)
  const pages: Record<string, unknown> = {
    '': {
      issuers: [
        { id: 1, legalName: 'One' },
        { id: '2', doingBusinessAsName: 'Two' },
      ],
      nextPageToken: 'p2',
    },
    p2: {
      issuers: [
        { id: '3', legalName: 'Three' },
        { id: 1, legalName: 'One again' },
      ],
      nextPageToken: 'p3',
    },
    p3: { issuers: [{ id: '4', legalName: 'Four' }], nextPageToken: '' },
  }
  fake.issuers = ({ search }) => ({ body: pages[new URLSearchParams(search).get('pageToken') ?? ''] })
  const all = await listIssuers(app, TOKEN)
  t.same(all, [
    { id: '1', legalName: 'One' },
    { id: '2', legalName: 'Two' },
    { id: '3', legalName: 'Three' },
    { id: '4', legalName: 'Four' },
  ])
  t.same(
    fake.apiRequests.map((r) => r.search),
    ['?pageSize=50', '?pageSize=50&pageToken=p2', '?pageSize=50&pageToken=p3'],
  )
  fake.apiRequests.length = 0
  fake.issuers = () => ({ body: { issuers: [{ id: 'x', legalName: 'X' }], nextPageToken: 'same' } })
  t.same(await listIssuers(app, TOKEN), [{ id: 'x', legalName: 'X' }])
  t.equal(fake.apiRequests.length, 2, 'a token seen twice stops the loop')
  fake.apiRequests.length = 0
  let n = 0
  fake.issuers = () => ({ body: { issuers: [{ id: `i${n}` }], nextPageToken: `t${++n}` } })
  t.equal((await listIssuers(app, TOKEN, { maxPages: 3 })).length, 3)
  t.equal(fake.apiRequests.length, 3, 'bounded')
})

t.test("cap table: Carta's documented sample parses into the typed summary", async (t) => {
  const fake = await startFakeCarta(t)
  const app = appFor(fake)
  // The example of https://open-cap-table-coalition.github.io/Tevatron/types/capitalization_table/
  fake.capTable = () => ({
    body: {
      capitalizationTable: {
        issuerId: '7',
        asOfDate: { value: '2021-01-01' },
        summary: {
          fullyDilutedShares: { value: '61399310.00' },
          outstandingShares: { value: '16328224.00' },
          cashRaised: { currencyCode: { value: 'USD' }, amount: { value: '20261050.79' } },
        },
        shareClassSummaries: [
          {
            shareClassId: '10',
            optionPoolIds: ['3'],
            fullyDilutedShares: { value: '5603645.00' },
            outstandingShares: { value: '5603645.00' },
            cashRaised: { currencyCode: { value: 'USD' }, amount: { value: '1159354.84' } },
          },
        ],
        optionPoolSummaries: [
          {
            optionPoolId: '3',
            shareClassId: '9',
            fullyDilutedShares: { value: '44871088.00' },
            outstandingEquityAwardDerivatives: { value: '3725634.0' },
            outstandingCommittedRestrictedStockAwards: { value: '0' },
            name: 'Equity Incentive Plan',
            authorizedShares: { value: '45000000' },
          },
        ],
        warrantBlockSummaries: [
          {
            warrantBlockId: '1',
            shareClassId: '10',
            fullyDilutedShares: { value: '3029344.00' },
            outstandingWarrants: { value: '3029344.00' },
            cashRaised: { currencyCode: { value: 'USD' }, amount: { value: '1075000.00' } },
          },
        ],
        noteBlockSummaries: [
          {
            noteBlockId: '4',
            cashRaised: { currencyCode: { value: 'USD' }, amount: { value: '1075000.00' } },
            principal: { currencyCode: { value: 'USD' }, amount: { value: '1075000.00' } },
            interest: { currencyCode: { value: 'USD' }, amount: { value: '382524.65' } },
          },
        ],
      },
    },
  })
  const table = await fetchCapTableSummary(app, TOKEN, 7)
  t.equal(fake.apiRequests.at(-1)?.path, '/v1alpha1/issuers/7/capitalizationTable', 'a numeric id works too')
  t.strictSame(table, {
    issuerId: '7',
    issuerName: null,
    asOfDate: '2021-01-01',
    currency: 'USD',
    shareClasses: [
      {
        kind: 'share_class',
        id: '10',
        name: null,
        shareClassId: null,
        outstanding: 5603645,
        fullyDiluted: 5603645,
        cashRaised: 1159354.84,
      },
    ],
    optionPools: [
      {
        kind: 'option_pool',
        id: '3',
        name: 'Equity Incentive Plan',
        shareClassId: '9',
        outstanding: 3725634,
        fullyDiluted: 44871088,
        cashRaised: null,
      },
    ],
    warrantBlocks: [
      {
        kind: 'warrant_block',
        id: '1',
        name: null,
        shareClassId: '10',
        outstanding: 3029344,
        fullyDiluted: 3029344,
        cashRaised: 1075000,
      },
    ],
    noteBlocks: [{ id: '4', name: null, principal: 1075000, interest: 382524.65, cashRaised: 1075000 }],
    totals: { outstanding: 16328224, fullyDiluted: 61399310, cashRaised: 20261050.79 },
  })
})
