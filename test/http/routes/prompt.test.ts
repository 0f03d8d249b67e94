// The home page asks a connected person who lacks an active rollout's scopes, with the same
// one-click path as an emailed link; "Not now" hides it; someone else's rollout is refused.
import t from 'tap'
import { startTestApp } from '../../helpers/app.js'
import { hiddenField } from '../../helpers/browser-agent.js'
import { connectUser } from '../../helpers/connect.js'
import { createRollout } from '../../links/fixtures.js'

t.test('a lacking member is asked on the home page; the button opens their link; Not now hides it', async (t) => {
  const app = await startTestApp(t)
  const rollout = await createRollout(app.db, { name: 'Cap table summary', now: app.clock.now() })
  const { agent, userId } = await connectUser(app, { appKey: 'production-v1' })
  const home = await agent.get(`${app.url}/`)
  t.match(home.text, 'One more permission is needed: Cap table summary')
  t.match(home.text, 'See a summary of each company&#39;s cap table')
  const csrf = hiddenField(home.text, '_csrf')

  const go = await agent.post(`${app.url}/prompt/${rollout.id}`, { _csrf: csrf })
  t.equal(go.status, 303)
  t.match(go.location, /^\/reauthorize\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'to their own link')
  const link = await app.db
    .selectFrom('reauth_links')
    .selectAll()
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  t.equal(link.issued_by, `user:${userId}`)
  const page = await agent.get(`${app.url}${go.location}`)
  t.equal(page.status, 200)
  t.match(page.text, 'Continue to Carta')

  const noCsrf = await agent.post(`${app.url}/prompt/${rollout.id}/dismiss`, {})
  t.equal(noCsrf.status, 403, 'CSRF protected')
  const dismissed = await agent.post(`${app.url}/prompt/${rollout.id}/dismiss`, { _csrf: csrf })
  t.equal(dismissed.status, 303)
  const after = await agent.get(`${app.url}/`)
  t.notMatch(after.text, 'One more permission is needed', 'hidden for this session')

  // A rollout this person already satisfies: not asked, and no link through the prompt.
  const satisfied = await createRollout(app.db, {
    name: 'Companies',
    scopes: ['read_issuer_info'],
    now: app.clock.now(),
  })
  const refused = await agent.post(`${app.url}/prompt/${satisfied.id}`, { _csrf: csrf })
  t.equal(refused.status, 404, 'refused with a page')
  t.ok(
    app.logs.some((l) => l.msg === 'prompt refused: not a lacking member'),
    'logged',
  )
  t.equal((await app.db.selectFrom('reauth_links').selectAll().execute()).length, 1, 'no link issued for it')
})
