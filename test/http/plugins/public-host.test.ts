// Browsing the app under another host name than PUBLIC_URL's (127.0.0.1 vs localhost): a page is
// redirected to PUBLIC_URL before anything starts (no OAuth state written, no session cookie for
// the wrong host), instead of a flow that comes back from Carta to the other name and fails.
import { request as httpRequest } from 'node:http'
import t from 'tap'
import { startTestApp } from '../../helpers/app.js'

function get(
  url: string,
  host: string,
  method = 'GET',
): Promise<{ status: number; location?: string; cookie?: string[] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { host } }, (res) => {
      res.resume()
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, location: res.headers.location, cookie: res.headers['set-cookie'] }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('pages on another host name are sent to PUBLIC_URL first', async (t) => {
  const app = await startTestApp(t)
  const port = new URL(app.url).port
  const wrong = `localhost:${port}`

  const home = await get(`${app.url}/`, wrong)
  t.equal(home.status, 307)
  t.equal(home.location, `${app.url}/`)
  t.notOk(home.cookie, 'no cookie for the wrong host')

  const connect = await get(`${app.url}/carta/connect?app=production-v1`, wrong)
  t.equal(connect.status, 307, 'the connect flow does not start on the wrong host')
  t.equal(connect.location, `${app.url}/carta/connect?app=production-v1`, 'path and query kept')
  t.equal((await app.db.selectFrom('oauth_states').select('state').execute()).length, 0, 'no state written')

  t.equal((await get(`${app.url}/admin`, wrong)).location, `${app.url}/admin`, 'operator pages too')
  t.equal((await get(`${app.url}/`, wrong.toUpperCase())).status, 307, 'host names compare case-insensitively')
  t.equal((await get(`${app.url}/`, `127.0.0.1:${port}`)).status, 200, 'PUBLIC_URL host: served')
  t.equal((await get(`${app.url}/`, `127.0.0.1:${port}`.toUpperCase())).status, 200)
  t.equal((await get(`${app.url}/healthz`, wrong)).status, 200, 'the health probe answers any host')
  t.not((await get(`${app.url}/sandbox/`, wrong)).status, 307, 'the sandbox stands in for another server')
  t.not((await get(`${app.url}/admin/sign-in`, wrong, 'POST')).status, 307, 'a POST is never redirected')
  t.ok(
    app.logs.some((l) => l.msg === 'page requested on another host name: sent to PUBLIC_URL' && l.host === wrong),
    'logged with the host',
  )
})
