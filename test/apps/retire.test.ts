// Retiring an app: no new connections, its users lacking in every rollout, and the
// current app of an environment only retired when another can take over.
import t from 'tap'
import { currentApp } from '../../src/apps/apps.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { connectUser, signInOperator } from '../helpers/connect.js'

t.test("a retired app's users are listed as lacking; connect refuses it", async (t) => {
  const app = await startTestApp(t)
  const ids = Object.fromEntries(
    (await app.db.selectFrom('oauth_apps').select(['id', 'key']).execute()).map((a) => [a.key, a.id]),
  )
  const rolloutId = await createRollout(
    app.db,
    { name: 'Issuers', appId: ids['production-v2']!, scopes: ['read_issuer_info'] },
    'operator:test',
    app.clock.now(),
  )
  const { userId } = await connectUser(app, { appKey: 'production-v1' })
  const before = await app.db
    .selectFrom('rollout_members')
    .select(['state'])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  t.equal(before.state, 'covered', 'v1 holds the scope: covered before retirement')

  const operator = await signInOperator(app)
  const list = await operator.get(`${app.url}/admin/apps`)
  t.equal(list.status, 200)
  t.match(list.text, /scope-ledger-production-v1/)
  t.match(list.text, new RegExp(`href="/admin/apps/${ids['production-v1']}/retire"`))

  const confirm = await operator.get(`${app.url}/admin/apps/${ids['production-v1']}/retire`)
  t.equal(confirm.status, 200)
  t.match(confirm.text, /Retire Production v1\?/)
  t.match(confirm.text, /<strong>1<\/strong> connected user/)
  const noCsrf = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/retire`, {})
  t.equal(noCsrf.status, 403)
  const res = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
  })
  t.equal(res.status, 303)
  const row = await app.db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('id', '=', ids['production-v1']!)
    .executeTakeFirstOrThrow()
  t.equal(row.status, 'retired')
  t.equal(row.is_current, 0)
  t.equal(row.retired_at, app.clock.now())
  const member = await app.db
    .selectFrom('rollout_members')
    .select(['state', 'needs_action'])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  t.same(member, { state: 'lacking', needs_action: 1 }, 'listed as needing reauthorization')
  const event = await app.db
    .selectFrom('audit_events')
    .selectAll()
    .where('type', '=', 'app.retired')
    .executeTakeFirstOrThrow()
  t.equal(event.actor, 'operator:ops')
  t.equal(event.app_id, ids['production-v1'])
  t.match((await operator.get(`${app.url}/admin/apps`)).text, /retired \d{4}-\d{2}-\d{2}/)

  t.equal(row.successor_app_id, ids['production-v2'], "the successor defaults to the environment's current app")
  t.match((await operator.get(`${app.url}/admin/apps`)).text, 'succeeded by Production v2')
  // One state, the same on the rollout page: lacking, because the app is retired.
  const rolloutPage = await operator.get(`${app.url}/admin/rollouts/${rolloutId}`)
  t.match(rolloutPage.text, /Production v1 <span class="badge bad">retired app<\/span>/)
  t.notMatch(rolloutPage.text, 'needs reconnect')
  const connect = await operator.get(`${app.url}/carta/connect?app=production-v1`)
  t.equal(connect.status, 303, "a retired app's users connect with its successor")
  t.match(connect.location, 'client_id=scope-ledger-production-v2')
  await app.db
    .updateTable('oauth_apps')
    .set({ successor_app_id: null })
    .where('id', '=', ids['production-v1']!)
    .execute()
  t.equal(
    (await operator.get(`${app.url}/carta/connect?app=production-v1`)).status,
    409,
    'no new connections with a retired app that has no successor',
  )
  const twice = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
  })
  t.equal(twice.status, 409)
})

t.test('retiring a current app: another active app of the environment takes over, or a clear refusal', async (t) => {
  const app = await startTestApp(t)
  const ids = Object.fromEntries(
    (await app.db.selectFrom('oauth_apps').select(['id', 'key']).execute()).map((a) => [a.key, a.id]),
  )
  const operator = await signInOperator(app)

  const only = await operator.get(`${app.url}/admin/apps/${ids.playground}/retire`)
  t.equal(only.status, 200)
  t.match(only.text, /no other active playground app could take over/)
  const refused = await operator.post(`${app.url}/admin/apps/${ids.playground}/retire`, {
    _csrf: hiddenField(only.text, '_csrf'),
  })
  t.equal(refused.status, 409)
  t.match(refused.text, /Cannot retire the only app/)
  t.equal(
    (await app.db.selectFrom('oauth_apps').select('status').where('id', '=', ids.playground!).executeTakeFirstOrThrow())
      .status,
    'active',
    'unchanged',
  )

  const confirm = await operator.get(`${app.url}/admin/apps/${ids['production-v2']}/retire`)
  t.match(confirm.text, /Choose the app new connections will use instead/)
  t.match(confirm.text, new RegExp(`<option value="${ids['production-v1']}">Production v1`))
  const wrong = await operator.post(`${app.url}/admin/apps/${ids['production-v2']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
    newCurrentAppId: String(ids.playground),
  })
  t.equal(wrong.status, 400, 'an app of another environment cannot take over')
  const res = await operator.post(`${app.url}/admin/apps/${ids['production-v2']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
    newCurrentAppId: String(ids['production-v1']),
  })
  t.equal(res.status, 303)
  t.equal((await currentApp(app.db, 'production'))?.key, 'production-v1', 'v1 is now current')
  const event = await app.db
    .selectFrom('audit_events')
    .select('details')
    .where('type', '=', 'app.retired')
    .executeTakeFirstOrThrow()
  t.same(JSON.parse(event.details), {
    key: 'production-v2',
    environment: 'production',
    wasCurrent: true,
    newCurrentAppId: ids['production-v1'],
    successorAppId: ids['production-v1'],
  })
})

t.test('a successor can be chosen for any retired app, also one retired earlier', async (t) => {
  const app = await startTestApp(t)
  const ids = Object.fromEntries(
    (await app.db.selectFrom('oauth_apps').select(['id', 'key']).execute()).map((a) => [a.key, a.id]),
  )
  const operator = await signInOperator(app)
  // Not the current app: the retire page offers every active app, the current one proposed.
  const confirm = await operator.get(`${app.url}/admin/apps/${ids['production-v1']}/retire`)
  t.match(confirm.text, 'Its users reconnect with')
  t.match(confirm.text, `<option value="${ids['production-v2']}" selected>Production v2`)
  const bad = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
    successorAppId: String(ids['production-v1']),
  })
  t.equal(bad.status, 400, 'an app cannot succeed itself')
  t.match(bad.text, 'must be another app that is still active')
  const retired = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/retire`, {
    _csrf: hiddenField(confirm.text, '_csrf'),
    successorAppId: String(ids.playground),
  })
  t.equal(retired.status, 303)

  // An app retired some other way (the apps file) with no successor: chosen afterwards.
  await app.db
    .updateTable('oauth_apps')
    .set({ status: 'retired', successor_app_id: null })
    .where('id', '=', ids['production-v1']!)
    .execute()
  const list = await operator.get(`${app.url}/admin/apps`)
  t.match(list.text, `href="/admin/apps/${ids['production-v1']}/successor">Choose successor…`)
  const page = await operator.get(`${app.url}/admin/apps/${ids['production-v1']}/successor`)
  t.equal(page.status, 200)
  const csrf = hiddenField(page.text, '_csrf')
  const refused = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/successor`, {
    _csrf: csrf,
    successorAppId: '999',
  })
  t.equal(refused.status, 400, 'an unknown app cannot be the successor')
  const saved = await operator.post(`${app.url}/admin/apps/${ids['production-v1']}/successor`, {
    _csrf: csrf,
    successorAppId: String(ids['production-v2']),
  })
  t.equal(saved.status, 303)
  t.match((await operator.get(`${app.url}/admin/apps`)).text, 'succeeded by Production v2')
  const connect = await operator.get(`${app.url}/carta/connect?app=production-v1`)
  t.match(connect.location, 'client_id=scope-ledger-production-v2')
  t.ok(
    (await app.db.selectFrom('audit_events').select('type').where('type', '=', 'app.successor_set').execute()).length,
  )
  t.equal(
    (await operator.get(`${app.url}/admin/apps/${ids['production-v2']}/successor`)).status,
    303,
    'an active app has no successor: sent to its retire page',
  )
})
