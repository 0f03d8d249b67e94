// The cap-table page reads Carta's documented GET /v1alpha1/issuers/{issuerId}/capitalizationTable:
// it renders Carta's shape (share classes by id, named option pools, notes), says which resource was
// missing on a 404 (logging the path, never the token), tells a restricted company from a missing
// scope, and renders other shapes from a Carta-like server.
import t from 'tap'
import { readTokens } from '../../../src/grants/tokens.js'
import { startTestApp } from '../../helpers/app.js'
import { Agent } from '../../helpers/browser-agent.js'
import { startFakeCarta } from '../../helpers/fake-carta.js'
import { beginConnect, callback } from '../../flows/helpers.js'
import { connectUser, sandboxControl } from '../../helpers/connect.js'

t.test('against the sandbox: the documented shape, restricted and missing companies, rate limit', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId } = await connectUser(app, { appKey: 'production-v2', cartaUser: 'cu_1004' })

  const page = await agent.get(`${app.url}/features/issuers/iss_tidepool/cap-table`)
  t.equal(page.status, 200)
  t.match(page.text, /as of \d{4}-\d{2}-\d{2}/)
  t.match(page.text, /<td>Share class 501<\/td><td>5,200,000<\/td><td>5,200,000<\/td>/, 'share classes by id')
  t.match(
    page.text,
    /2023 Stock Option Plan <span class="muted">\(430,000 granted\)<\/span><\/td><td>—<\/td><td>780,000</,
  )
  t.match(page.text, /<th>Total<\/th><th>5,200,000<\/th><th>5,980,000<\/th>/, "Carta's summary totals")
  t.match(
    page.text,
    /Note block 503: principal 1,500,000 USD, interest 87,500 USD/,
    "Carta's note blocks carry no name",
  )
  t.match(page.text, /Cash raised: 1,505,200 USD/)
  t.match(page.text, /Carta identifies share classes by id/)

  const restricted = await agent.get(`${app.url}/features/issuers/iss_quill/cap-table`)
  t.equal(restricted.status, 403)
  t.match(restricted.text, /You did not give this integration access to this company/)
  t.notMatch(restricted.text, /Reauthorize on Carta/, 'not the missing-permission gate')
  t.ok(
    app.logs.some(
      (l) => l.msg === 'Carta refused access to the resource' && l.reason === 'ACCESS_TO_RESOURCE_RESTRICTED',
    ),
  )

  const missing = await agent.get(`${app.url}/features/issuers/iss_nope/cap-table`)
  t.equal(missing.status, 404)
  t.match(missing.text, /Carta has no such company for your account: it found no company cap table/)
  const line = app.logs.find((l) => l.msg === 'Carta answered 404')
  t.match(line, { resource: 'issuer cap table', path: '/v1alpha1/issuers/iss_nope/capitalizationTable' })
  const tokens = await readTokens(app.db, app.app.deps.cipher, grantId)
  t.notOk(JSON.stringify(app.logs).includes(tokens!.accessToken), 'the token is never logged')
  t.notOk(missing.text.includes(tokens!.accessToken))

  await sandboxControl(app, 'fail', { endpoint: 'api', status: 429, times: 1, retryAfterSeconds: 5 })
  const limited = await agent.get(`${app.url}/features/issuers/iss_tidepool/cap-table`)
  t.equal(limited.status, 503, 'rate limited: Carta is busy')
  t.notMatch(limited.text, /API rate limit exceeded/, "not Carta's raw body")
})

t.test('against a Carta-like server: other shapes render, 404 names the resource', async (t) => {
  const fake = await startFakeCarta(t, ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info'])
  const app = await startTestApp(t, { env: fake.env() })
  const agent = new Agent()
  const { state } = await beginConnect(agent, app.url)
  t.equal((await callback(agent, app.url, { code: 'c', state })).status, 303)

  fake.capTable = ({ path }) => ({
    body: {
      capitalizationTable: {
        issuerId: 7,
        shareClassSummaries: [
          { shareClassId: 1, name: 'Common', outstandingShares: '1000', fullyDilutedShares: { value: '1000.00' } },
          { shareClassId: '2', outstandingShares: { value: '250.5' }, fullyDilutedShares: '250.5' },
        ],
      },
      pathSeen: path,
    },
  })
  const page = await agent.get(`${app.url}/features/issuers/7/cap-table`)
  t.equal(page.status, 200)
  t.equal(fake.apiRequests.at(-1)?.path, '/v1alpha1/issuers/7/capitalizationTable', 'the documented path')
  t.match(page.text, /<td>Common<\/td><td>1,000<\/td><td>1,000<\/td>/)
  t.match(page.text, /<td>Share class 2<\/td><td>250.5<\/td><td>250.5<\/td>/)
  t.match(page.text, /<th>Total<\/th><th>1,250.5<\/th><th>1,250.5<\/th>/, 'summed when Carta sends no summary')

  fake.capTable = () => ({ status: 404, body: { code: 5, message: 'Resource not found' } })
  const missing = await agent.get(`${app.url}/features/issuers/8/cap-table`)
  t.equal(missing.status, 404)
  t.match(missing.text, /no company cap table/)

  fake.capTable = () => ({ body: { something: 'else' } })
  t.equal((await agent.get(`${app.url}/features/issuers/7/cap-table`)).status, 502, 'no table at all: bad gateway')
})
