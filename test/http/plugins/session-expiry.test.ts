// A session expires a day after its last use, but a page view does not write it: its stored expiry
// slides forward only when it is SESSION_REFRESH_MS behind (plugins/sessions.ts), so dashboard
// pages read the database and never wait for its write lock.
import t from 'tap'
import { SESSION_COOKIE, SESSION_REFRESH_MS } from '../../../src/http/plugins/sessions.js'
import { DAY_MS } from '../../../src/time.js'
import { startTestApp } from '../../helpers/app.js'
import { operatorAgent } from '../../links/fixtures.js'

t.test('page views leave the stored session alone until its expiry is 5 minutes behind', async (t) => {
  const app = await startTestApp(t)
  const ops = await operatorAgent(app)
  const stored = () => app.db.selectFrom('sessions').select(['sid', 'data', 'expires_at']).executeTakeFirstOrThrow()
  t.equal((await app.db.selectFrom('sessions').select('sid').execute()).length, 1, 'one session: the sign-in')
  // The first page with a form stores the session's CSRF secret (a change, so a write).
  t.equal((await ops.get(`${app.url}/admin`)).status, 200)
  const signedIn = await stored()
  t.ok(JSON.parse(signedIn.data)._csrf, 'the CSRF secret is stored')

  for (let i = 0; i < 3; i++) {
    const page = await ops.get(`${app.url}/admin`)
    t.equal(page.status, 200)
    t.notOk(
      page.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`)),
      'no new session cookie on a page view',
    )
  }
  t.same(await stored(), signedIn, 'the stored session is unchanged: no write per page view')

  // The session was last written 6 minutes ago (its expiry is 23 h 54 min away).
  const aged = signedIn.expires_at - SESSION_REFRESH_MS - 60_000
  const data = JSON.parse(signedIn.data)
  data.cookie.expires = new Date(aged).toISOString()
  await app.db
    .updateTable('sessions')
    .set({ data: JSON.stringify(data), expires_at: aged })
    .where('sid', '=', signedIn.sid)
    .execute()
  const before = Date.now()
  const page = await ops.get(`${app.url}/admin`)
  t.equal(page.status, 200, 'still signed in')
  const cookie = page.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`))
  t.ok(cookie, 'the cookie is sent again with the new expiry')
  const slid = await stored()
  t.equal(slid.sid, signedIn.sid, 'the same session')
  t.ok(slid.expires_at >= before + DAY_MS - 1_000, 'its stored expiry is a day from now again')
  t.equal(JSON.parse(slid.data).operatorId, data.operatorId, 'with its contents')
  const again = await ops.get(`${app.url}/admin`)
  t.same(await stored(), slid, 'and the next page view writes nothing')
  t.notOk(again.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`)))

  // A session whose stored expiry passed is over, whatever the browser still sends.
  const expired = JSON.parse(slid.data)
  expired.cookie.expires = new Date(Date.now() - 1_000).toISOString()
  await app.db
    .updateTable('sessions')
    .set({ data: JSON.stringify(expired), expires_at: Date.now() - 1_000 })
    .where('sid', '=', signedIn.sid)
    .execute()
  const out = await ops.get(`${app.url}/admin`)
  t.equal(out.status, 303, 'signed out')
  t.match(out.location, /\/admin\/sign-in/)
})
