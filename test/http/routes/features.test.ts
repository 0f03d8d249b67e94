// Feature gates: a user lacking the cap-table scope sees a plain-words gate page with
// a Reauthorize button; after reauthorizing through the sandbox the feature works and the old
// token is revoked. Carta's own 403 never reaches the user raw.
import t from 'tap'
import { processDueRevocations } from '../../../src/grants/revocation.js'
import { startTestApp } from '../../helpers/app.js'
import { Agent, hiddenField } from '../../helpers/browser-agent.js'
import { connectUser, finishAuthorization, sandboxControl } from '../../helpers/connect.js'

t.test('not connected: feature pages send the browser to the start page', async (t) => {
  const app = await startTestApp(t)
  const res = await new Agent().get(`${app.url}/features/issuers`)
  t.equal(res.status, 303)
  t.equal(res.location, '/')
})

t.test('lacking the cap-table scope: gate page, reauthorize with the current app, then the summary', async (t) => {
  const app = await startTestApp(t)
  const { agent, grantId: oldGrantId, userId } = await connectUser(app, { appKey: 'production-v1' })

  const list = await agent.get(`${app.url}/features/issuers`)
  t.equal(list.status, 200)
  t.match(list.text, /href="\/features\/issuers\/iss_lumen\/cap-table"/)
  t.match(list.text, /needs your permission/)

  const gate = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  t.equal(gate.status, 403)
  t.match(gate.text, /Cap table summary/)
  t.match(gate.text, /See a summary of each company/)
  t.match(gate.text, /read_issuer_capitalizationtablesummary/)
  t.match(gate.text, /Reauthorize on Carta/)
  t.ok(
    app.logs.some((l) => l.msg === 'feature gate: missing permission'),
    'logged',
  )

  const noCsrf = await agent.post(`${app.url}/features/cap-table/reauthorize`, {
    returnTo: '/features/issuers/iss_lumen/cap-table',
  })
  t.equal(noCsrf.status, 403, 'reauthorize needs the CSRF token')

  const start = await agent.post(`${app.url}/features/cap-table/reauthorize`, {
    _csrf: hiddenField(gate.text, '_csrf'),
    returnTo: hiddenField(gate.text, 'returnTo'),
  })
  t.equal(start.status, 303)
  const authorize = new URL(start.location!)
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  t.equal(authorize.searchParams.get('client_id'), v2.clientId, 'the current production app')
  t.same(
    authorize.searchParams.get('scope')!.split(' ').sort(),
    [...v2.scopes].sort(),
    "all of the current app's scopes",
  )

  const done = await finishAuthorization(app, agent, start.location!)
  t.equal(done.userId, userId, 'same end user')
  t.not(done.grantId, oldGrantId, 'a new grant')
  t.equal(done.landed.status, 200, 'back on the feature page')
  t.match(done.landed.url, /\/features\/issuers\/iss_lumen\/cap-table$/)
  t.match(done.landed.text, /2021 Equity Incentive Plan/, 'option pools carry names')
  t.match(done.landed.text, /Share class 103/, 'share classes are named by id, as Carta sends them')
  t.match(done.landed.text, /2,400,000/)

  const old = await app.db.selectFrom('grants').select('status').where('id', '=', oldGrantId).executeTakeFirstOrThrow()
  t.equal(old.status, 'superseded')
  const run = await processDueRevocations({ ...app.app.deps })
  t.ok(run.sent >= 1, 'the old token is revoked at Carta')

  const unknown = await agent.get(`${app.url}/features/issuers/iss_nope/cap-table`)
  t.equal(unknown.status, 404)
  t.match(unknown.text, /Carta has no such company/)
  const bad = await agent.get(`${app.url}/features/issuers/${encodeURIComponent('a b')}/cap-table`)
  t.equal(bad.status, 400)
})

t.test('reauthorize refuses foreign return paths', async (t) => {
  const app = await startTestApp(t)
  const { agent } = await connectUser(app, { appKey: 'production-v1' })
  const gate = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  const start = await agent.post(`${app.url}/features/cap-table/reauthorize`, {
    _csrf: hiddenField(gate.text, '_csrf'),
    returnTo: '//evil.example/x',
  })
  t.equal(start.status, 303)
  const done = await finishAuthorization(app, agent, start.location!)
  t.match(done.landed.url, /\/features\/issuers$/, 'falls back to the feature page')
})

t.test('Carta answers 403 although our records say the scope is held: the gate page, not the raw error', async (t) => {
  const app = await startTestApp(t)
  const { agent } = await connectUser(app)
  await sandboxControl(app, 'fail', { endpoint: 'api', status: 403, times: 1 })
  const res = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  t.equal(res.status, 403)
  t.match(res.text, /Reauthorize on Carta/)
  t.notMatch(res.text, /insufficient_scope|injected_failure/)
  t.ok(app.logs.some((l) => l.msg === 'Carta answered 403 for a feature the grant should allow'))
  const ok = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  t.equal(ok.status, 200)
})

t.test('Carta API down: a clear 503 page', async (t) => {
  const app = await startTestApp(t)
  const { agent } = await connectUser(app)
  await sandboxControl(app, 'fail', { endpoint: 'api', status: 503, times: 1 })
  const res = await agent.get(`${app.url}/features/issuers`)
  t.equal(res.status, 503)
  t.match(res.text, /Carta is not answering/)
})
