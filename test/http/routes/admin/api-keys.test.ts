// The API keys page: create (the key shown once, on the POST's answer only), list, revoke; CSRF on
// each POST; bad names and permissions refused with a page and nothing written.
import t from 'tap'
import { startTestApp } from '../../../helpers/app.js'
import { hiddenField } from '../../../helpers/browser-agent.js'
import { operatorAgent } from '../../../links/fixtures.js'
import { api } from '../api/helpers.js'

t.test('create a key on the page, use it, revoke it', async (t) => {
  const app = await startTestApp(t)
  const ops = await operatorAgent(app)
  const page = await ops.get(`${app.url}/admin/api-keys`)
  t.equal(page.status, 200)
  t.match(page.text, 'No key yet')
  const csrf = hiddenField(page.text, '_csrf')
  const created = await ops.post(`${app.url}/admin/api-keys`, {
    _csrf: csrf,
    name: 'billing',
    permissions: ['read', 'links'],
  })
  t.equal(created.status, 200)
  const key = /value="(slk_[A-Za-z0-9_-]{43})"/.exec(created.text)?.[1]
  t.ok(key, 'the key is on the answer')
  t.match(created.text, 'read, links')
  t.equal((await api(app, key!, 'GET', '/api/v1/rollouts')).status, 200, 'and works')
  const again = await ops.get(`${app.url}/admin/api-keys`)
  t.notOk(again.text.includes(key!), 'never shown again')
  t.match(again.text, /billing/)
  t.notMatch(again.text, /Last used[^<]*<\/th>[\s\S]*never<\/td>[\s\S]*<\/tbody>/, 'last use recorded')

  const refused = await ops.post(`${app.url}/admin/api-keys`, { _csrf: csrf, name: 'no perms' })
  t.equal(refused.status, 400, 'a key without permissions is refused')
  t.match(refused.text, 'at least one permission')
  const badPerm = await ops.post(`${app.url}/admin/api-keys`, { _csrf: csrf, name: 'x', permissions: 'root' })
  t.equal(badPerm.status, 400)
  const nul = await ops.post(`${app.url}/admin/api-keys`, { _csrf: csrf, name: 'a\u0000b', permissions: 'read' })
  t.equal(nul.status, 400, 'NUL refused')
  const noCsrf = await ops.post(`${app.url}/admin/api-keys`, { name: 'x', permissions: 'read' })
  t.equal(noCsrf.status, 403, 'CSRF checked')
  t.equal((await app.db.selectFrom('api_keys').select('id').execute()).length, 1, 'nothing else written')

  const revoked = await ops.post(`${app.url}/admin/api-keys/1/revoke`, { _csrf: csrf })
  t.equal(revoked.status, 303)
  t.equal((await api(app, key!, 'GET', '/api/v1/rollouts')).status, 401, 'revoked key refused')
  t.match((await ops.get(`${app.url}/admin/api-keys?revoked=1`)).text, /revoked/)
  t.equal((await ops.post(`${app.url}/admin/api-keys/99/revoke`, { _csrf: csrf })).status, 404)
  t.equal((await ops.post(`${app.url}/admin/api-keys/${2 ** 31}/revoke`, { _csrf: csrf })).status, 404)
  t.notOk(JSON.stringify(app.logs).includes(key!), 'the key is never logged')
})
