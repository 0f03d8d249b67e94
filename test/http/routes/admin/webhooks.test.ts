// The webhooks pages: add an endpoint (secret once), the delivery log with response codes, manual
// redelivery, disable/enable/remove; CSRF on each POST; bad URLs and events refused with nothing written.
import t from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import { webhookCommand } from '../../../../src/cli/webhook.js'
import { openDatabase } from '../../../../src/db/index.js'
import { freePort, startTestApp } from '../../../helpers/app.js'
import { hiddenField } from '../../../helpers/browser-agent.js'
import { addGrant, addUser } from '../../../helpers/ledger.js'
import { operatorAgent } from '../../../links/fixtures.js'

t.test('add an endpoint, see its deliveries, send one again, disable and remove it', async (t) => {
  const clock = new ManualClock(Date.now())
  const app = await startTestApp(t, { clock })
  const ops = await operatorAgent(app)
  const page = await ops.get(`${app.url}/admin/webhooks`)
  t.equal(page.status, 200)
  const csrf = hiddenField(page.text, '_csrf')
  // A receiver that is not there: the delivery fails with a connection error.
  const added = await ops.post(`${app.url}/admin/webhooks`, {
    _csrf: csrf,
    url: `http://127.0.0.1:${await freePort()}/hooks`,
    events: ['grant.created', 'grant.revoked'],
  })
  t.equal(added.status, 200)
  const secret = /value="(whsec_[^"]+)"/.exec(added.text)?.[1]
  t.ok(secret, 'the secret is shown once')
  t.notOk((await ops.get(`${app.url}/admin/webhooks`)).text.includes(secret!), 'and not again')

  for (const [form, why] of [
    [{ _csrf: csrf, url: 'ftp://example.com/x' }, 'not http(s)'],
    [{ _csrf: csrf, url: 'http://example.com/x' }, 'plain http off loopback'],
    [{ _csrf: csrf, url: 'https://u:p@example.com/x' }, 'credentials'],
    [{ _csrf: csrf, url: 'https://example.com/x', events: 'grant.nope' }, 'unknown event'],
    [{ _csrf: csrf, url: 'https://exa\u0000mple.com' }, 'NUL'],
  ] as const) {
    const res = await ops.post(`${app.url}/admin/webhooks`, form as Record<string, string>)
    t.equal(res.status, 400, `refused: ${why}`)
  }
  t.equal((await ops.post(`${app.url}/admin/webhooks`, { url: 'https://example.com/x' })).status, 403, 'CSRF')
  t.equal((await app.db.selectFrom('webhook_endpoints').select('id').execute()).length, 1, 'nothing else written')

  const userId = await addUser(app.db, clock.now(), { carta: 'c-ann' })
  await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info'], clock.now())
  await app.app.jobs.run('webhooks')
  const log = await ops.get(`${app.url}/admin/webhooks/1`)
  t.equal(log.status, 200)
  t.match(log.text, 'grant.created')
  t.match(log.text, /ECONNREFUSED|connect/, 'the failure is in the log')
  const delivery = await app.db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow()
  t.equal(delivery.status, 'pending', 'will retry')
  await app.db.updateTable('webhook_deliveries').set({ status: 'failed' }).execute()
  const again = await ops.post(`${app.url}/admin/webhooks/1/deliveries/${delivery.id}/redeliver`, { _csrf: csrf })
  t.equal(again.status, 303)
  t.equal((await app.db.selectFrom('webhook_deliveries').selectAll().execute()).length, 2, 'a new delivery queued')
  t.equal(
    (await ops.post(`${app.url}/admin/webhooks/2/deliveries/${delivery.id}/redeliver`, { _csrf: csrf })).status,
    404,
  )
  t.equal((await ops.post(`${app.url}/admin/webhooks/1/deliveries/999/redeliver`, { _csrf: csrf })).status, 404)

  t.equal((await ops.post(`${app.url}/admin/webhooks/1/disable`, { _csrf: csrf })).status, 303)
  t.match((await ops.get(`${app.url}/admin/webhooks`)).text, /is disabled: disabled by operator:ops/)
  t.equal((await ops.post(`${app.url}/admin/webhooks/1/enable`, { _csrf: csrf })).status, 303)
  t.equal((await ops.post(`${app.url}/admin/webhooks/1/bogus`, { _csrf: csrf })).status, 404)
  t.equal((await ops.post(`${app.url}/admin/webhooks/1/remove`, { _csrf: csrf })).status, 303)
  t.equal((await app.db.selectFrom('webhook_endpoints').select('id').execute()).length, 0)
  t.equal((await ops.get(`${app.url}/admin/webhooks/1`)).status, 404)
  t.notOk(JSON.stringify(app.logs).includes(secret!.slice(6)), 'the secret is never logged')
})

t.test('webhook add prints the secret alone on stdout', async (t) => {
  const app = await startTestApp(t)
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const out: string[] = []
  const err: string[] = []
  const [log, error] = [console.log, console.error]
  console.log = (...a: unknown[]) => void out.push(a.join(' '))
  console.error = (...a: unknown[]) => void err.push(a.join(' '))
  t.teardown(() => {
    console.log = log
    console.error = error
  })
  t.equal(await webhookCommand(['add', 'https://example.com/hooks', '--events', 'grant.created,link.used'], open), 0)
  t.equal(out.length, 1)
  t.match(out[0], /^whsec_[A-Za-z0-9+/]+=*$/)
  t.match(err.at(-1), 'for grant.created, link.used')
  const row = await app.db.selectFrom('webhook_endpoints').selectAll().executeTakeFirstOrThrow()
  t.equal(row.events, 'grant.created link.used')
  t.notOk(JSON.stringify(row).includes(out[0]!.slice(6)), 'stored sealed')
  t.equal(app.app.deps.cipher.open({ keyId: row.key_id, value: row.secret }), out[0], 'and opens to the printed secret')
  t.equal(await webhookCommand(['add', 'https://example.com/x', '--events', 'nope'], open), 1)
  t.equal(await webhookCommand(['add', 'notaurl'], open), 1)
  t.equal(await webhookCommand(['add'], open), 2)
  out.length = 0
  t.equal(await webhookCommand(['list'], open), 0)
  t.match(out[0], /^1\thttps:\/\/example\.com\/hooks\tgrant\.created link\.used\tactive/)
})
