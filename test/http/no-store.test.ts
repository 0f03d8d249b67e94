// Pages that show a live reauthorization link or its token are never stored by a cache
// (RFC 9111 §5.2.2.5): the rollout page (copy boxes), a user's link page and the link's own page.
import t from 'tap'
import { issueLink, linkContextFrom } from '../../src/links/links.js'
import { startTestApp } from '../helpers/app.js'
import { createMember, createRollout, operatorAgent } from '../links/fixtures.js'

t.test('pages with live links or tokens send Cache-Control: no-store', async (t) => {
  const app = await startTestApp(t)
  const now = app.clock.now()
  const rollout = await createRollout(app.db, { now })
  const userId = await createMember(
    app.app.deps,
    { cartaUserId: 'c-ann', email: 'ann@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
    now,
  )
  const { url } = await issueLink(app.db, linkContextFrom(app.config, app.clock), {
    rolloutId: rollout.id,
    userId,
    issuedBy: 'test',
  })
  const ops = await operatorAgent(app)
  const rolloutPage = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
  t.equal(rolloutPage.status, 200)
  t.match(rolloutPage.text, url.replace(/&/g, '&amp;'), 'the rollout page shows the live link')
  t.equal(rolloutPage.headers.get('cache-control'), 'no-store', 'rollout page')
  const linkPage = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links/${userId}`)
  t.equal(linkPage.status, 200)
  t.equal(linkPage.headers.get('cache-control'), 'no-store', 'link page')
  const reauthorize = await fetch(url)
  t.equal(reauthorize.status, 200)
  t.equal(reauthorize.headers.get('cache-control'), 'no-store', '/reauthorize/<token>')
})
