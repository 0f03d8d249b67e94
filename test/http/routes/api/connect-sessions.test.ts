// Connect sessions: a one-time URL for the integrator's user; the Carta identity it yields is tied
// to externalUserId and the browser lands on the allowed returnTo. Refused: returnTo off the
// allowed origins, a second use, an unknown token, an external id that belongs to someone else.
import t from 'tap'
import { startTestApp } from '../../../helpers/app.js'
import { Agent } from '../../../helpers/browser-agent.js'
import { answerConsent, signIn } from '../../../sandbox/helpers.js'
import { auditRows } from '../../../links/fixtures.js'
import { api, newKey } from './helpers.js'

const ORIGIN = 'https://product.example.com'

async function runSession(app: Awaited<ReturnType<typeof startTestApp>>, url: string, cartaUser: string) {
  const agent = new Agent()
  const start = await agent.get(url)
  if (start.status !== 303) return { start, callback: null }
  await signIn(agent, `${app.url}/sandbox`, cartaUser)
  const back = await answerConsent(agent, start.location!, { decision: 'allow' })
  const callback = await agent.get(back.toString())
  return { start, callback }
}

t.test('a connect session ties the Carta identity to externalUserId and returns to the product', async (t) => {
  const app = await startTestApp(t, { env: { API_ALLOWED_RETURN_ORIGINS: `${ORIGIN},http://localhost:5173` } })
  const { key } = await newKey(app, ['connect', 'read'])
  const created = await api(app, key, 'POST', '/api/v1/connect-sessions', {
    externalUserId: 'acct-42',
    returnTo: `${ORIGIN}/settings/carta?done=1`,
  })
  t.equal(created.status, 200)
  const url = String(created.body.url)
  t.match(url, `${app.url}/connect/session/`)
  t.ok((created.body.expiresAt as number) > app.clock.now())

  const { start, callback } = await runSession(app, url, 'cu_1001')
  t.equal(start.status, 303, 'the URL starts the Carta connection')
  t.equal(callback?.status, 303)
  t.equal(callback?.location, `${ORIGIN}/settings/carta?done=1`, 'lands on returnTo')
  const user = await api(app, key, 'GET', '/api/v1/users?externalUserId=acct-42')
  t.equal(user.status, 200)
  t.equal(user.body.cartaUserId, 'cu_1001', 'the Carta identity is tied to the external id')
  t.match(await auditRows(app.db, 'api.connect_session_created'), [{ details: { externalUserId: 'acct-42' } }])

  const reused = await new Agent().get(url)
  t.equal(reused.status, 410, 'one use only')
  t.equal((await new Agent().get(`${app.url}/connect/session/${'A'.repeat(43)}`)).status, 404, 'unknown token')
  t.equal((await new Agent().get(`${app.url}/connect/session/short`)).status, 404)
  t.notOk(JSON.stringify(app.logs).includes(url.split('/').at(-1)!), 'the one-time token is not logged')

  // Another Carta user may not take acct-42; nothing is recorded for them.
  const second = await api(app, key, 'POST', '/api/v1/connect-sessions', {
    externalUserId: 'acct-42',
    returnTo: ORIGIN,
  })
  const before = await app.db.selectFrom('grants').select('id').execute()
  const { callback: refused } = await runSession(app, String(second.body.url), 'cu_1002')
  t.equal(refused?.status, 409, 'external id already taken')
  t.same(await app.db.selectFrom('grants').select('id').execute(), before, 'no grant recorded')
})

t.test('returnTo must be under an allowed origin; bad bodies refused', async (t) => {
  const app = await startTestApp(t, { env: { API_ALLOWED_RETURN_ORIGINS: ORIGIN } })
  const { key } = await newKey(app, ['connect'])
  const { key: readOnly } = await newKey(app, ['read'])
  const post = (k: string, body: unknown) => api(app, k, 'POST', '/api/v1/connect-sessions', body)
  for (const returnTo of [
    'https://evil.example.com/x',
    'http://product.example.com/x',
    '/local',
    `https://u:p@product.example.com`,
  ]) {
    const res = await post(key, { externalUserId: 'a', returnTo })
    t.equal(res.status, 400, `refused: ${returnTo}`)
    t.equal(res.body.code, 'connect_session.bad_return')
  }
  t.equal((await post(key, { externalUserId: '', returnTo: ORIGIN })).status, 400, 'empty id')
  t.equal((await post(key, { externalUserId: 'a\u0000', returnTo: ORIGIN })).status, 400, 'NUL')
  t.equal((await post(key, { returnTo: ORIGIN })).status, 400, 'missing id')
  t.equal((await post(readOnly, { externalUserId: 'a', returnTo: ORIGIN })).status, 403, 'needs connect')
  t.equal((await app.db.selectFrom('connect_sessions').select('id').execute()).length, 0, 'nothing written')
})
