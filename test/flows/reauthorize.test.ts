// The whole reauthorization story over HTTP against the embedded sandbox Carta: a user connected
// through production-v1 lacks production-v2's scopes; the operator issues a link; another browser
// follows it through sandbox sign-in and consent; the user leaves the lacking list, the link shows
// used, the counts move. A replayed callback in a third browser fails; a different Carta identity
// returning through a link gets 403 and nothing is recorded.
import t, { type Test } from 'tap'
import { buildRollouts, type TestApp, startTestApp } from '../helpers/app.js'
import { Agent, type AgentResponse, hiddenField } from '../helpers/browser-agent.js'
import { appId, auditRows, operatorAgent } from '../links/fixtures.js'

const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']

/** From a sandbox authorize URL to the redirect back to our callback (not yet followed). */
async function throughSandbox(
  t: Test,
  app: TestApp,
  agent: Agent,
  authorize: string,
  user: string,
  scopes?: string[],
): Promise<string> {
  let page = await agent.get(authorize)
  if (/name="user_id"/.test(page.text)) {
    const signedIn = await agent.post(`${app.url}/sandbox/login`, {
      next: hiddenField(page.text, 'next'),
      user_id: user,
    })
    t.equal(signedIn.status, 303, `signed in to the sandbox as ${user}`)
    page = await agent.follow(signedIn)
  }
  t.equal(page.status, 200, 'sandbox consent page')
  const offered = [...page.text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!)
  const decided = await agent.post(`${app.url}/sandbox/o/authorize/`, {
    request_id: hiddenField(page.text, 'request_id'),
    scope: scopes ?? offered,
    decision: 'allow',
  })
  t.ok(decided.location?.startsWith(`${app.url}/carta/callback?`), 'sandbox redirects to our callback')
  return decided.location!
}

/** Connects a user through /carta/connect?app=<key> in their own browser. */
async function connect(t: Test, app: TestApp, user: string, appKey: string, scopes?: string[]): Promise<void> {
  const agent = new Agent()
  const start = await agent.get(`${app.url}/carta/connect?app=${appKey}`)
  t.equal(start.status, 303)
  const done = await agent.get(await throughSandbox(t, app, agent, start.location!, user, scopes))
  t.equal(done.status, 303, `${user} connected through ${appKey}`)
}

function stat(page: AgentResponse, label: string): number {
  const m = new RegExp(`<div class="value">([^<]+)</div><div class="label">${label}</div>`).exec(page.text)
  if (!m) throw new Error(`no stat "${label}"`)
  return Number(m[1]!.replace('%', ''))
}

/** The copy box's value for a user's row on the rollout page. */
function copyBox(page: AgentResponse, userId: number): string | null {
  const m = new RegExp(`<input[^>]*id="link-${userId}"[^>]*value="([^"]*)"`).exec(page.text)
  return m ? m[1]!.replace(/&amp;/g, '&') : null
}

async function userIdOf(app: TestApp, carta: string): Promise<number> {
  return (
    await app.db.selectFrom('end_users').select('id').where('carta_user_id', '=', carta).executeTakeFirstOrThrow()
  ).id
}

async function snapshot(app: TestApp) {
  const grants = await app.db.selectFrom('grants').select(['id', 'user_id', 'app_id', 'status']).orderBy('id').execute()
  const links = await app.db
    .selectFrom('reauth_links')
    .select(['id', 'used_at', 'used_grant_id'])
    .orderBy('id')
    .execute()
  const members = await app.db
    .selectFrom('rollout_members')
    .select(['user_id', 'state', 'missing_scopes'])
    .orderBy('user_id')
    .execute()
  const tokens = await app.db.selectFrom('grant_tokens').select('grant_id').orderBy('grant_id').execute()
  const users = await app.db.selectFrom('end_users').select(['id', 'active_grant_id', 'status']).orderBy('id').execute()
  return { grants, links, members, tokens, users }
}

t.test(
  'operator issues a link; the user reauthorizes in another browser; replay and account mix-up fail',
  async (t) => {
    const app = await startTestApp(t)
    // Ben granted only v1's scopes; Ada is on v2 with every scope; Chen on v1 too.
    await connect(t, app, 'cu_1002', 'production-v1')
    await connect(t, app, 'cu_1001', 'production-v2')
    await connect(t, app, 'cu_1003', 'production-v1')
    const ben = await userIdOf(app, 'cu_1002')
    const chen = await userIdOf(app, 'cu_1003')

    const ops = await operatorAgent(app)
    const dash = await ops.get(`${app.url}/admin`)
    t.equal(dash.status, 200)
    const created = await ops.post(`${app.url}/admin/rollouts`, {
      _csrf: hiddenField(dash.text, '_csrf'),
      name: 'Cap table summary',
      app_id: String(await appId(app.db, 'production-v2')),
      scopes: V2,
    })
    t.equal(created.status, 303, 'rollout created')
    const rolloutUrl = new URL(created.location!, app.url).href
    const rolloutId = Number(/\/admin\/rollouts\/(\d+)$/.exec(created.location!)![1])
    await buildRollouts(app.app) // the users are measured in the background

    let page = await ops.get(rolloutUrl)
    t.equal(page.status, 200)
    t.equal(stat(page, 'hold every required scope'), 1, 'Ada is covered')
    t.equal(stat(page, 'lack some scope'), 2, 'Ben and Chen lack the cap table scope')
    t.match(page.text, 'ben.hartley@harbor.example')
    t.equal(copyBox(page, ben), null, 'no link yet')

    // Issue Ben's link from his row; the page comes back with the copy box.
    const issued = await ops.post(`${app.url}/admin/rollouts/${rolloutId}/links`, {
      _csrf: hiddenField(page.text, '_csrf'),
      user_id: String(ben),
    })
    t.equal(issued.status, 303)
    t.equal(issued.location, `/admin/rollouts/${rolloutId}?link=${ben}#user-${ben}`)
    page = await ops.follow(issued)
    const link = copyBox(page, ben)
    t.ok(link?.startsWith(`${app.url}/reauthorize/`), 'the copy box holds the link')

    // Ben, in another browser: the link page, the button, the sandbox, the callback.
    const benBrowser = new Agent()
    const linkPage = await benBrowser.get(link!)
    t.equal(linkPage.status, 200)
    t.match(linkPage.text, 'See a summary of each company&#39;s cap table')
    const go = await benBrowser.post(link!, { _csrf: hiddenField(linkPage.text, '_csrf') })
    t.equal(go.status, 303, 'the button sends the browser to Carta')
    const authorize = new URL(go.location!)
    t.equal(authorize.pathname, '/sandbox/o/authorize/')
    t.equal(authorize.searchParams.get('client_id'), 'scope-ledger-production-v2', "the rollout's target app")
    t.same(authorize.searchParams.get('scope')!.split(' ').sort(), V2, "and that app's scopes")
    const callbackUrl = await throughSandbox(t, app, benBrowser, go.location!, 'cu_1002')

    // A third browser replaying the callback URL first: the state belongs to Ben's session.
    const before = await snapshot(app)
    const thief = new Agent()
    const replayedFirst = await thief.get(callbackUrl)
    t.equal(replayedFirst.status, 400, 'callback in another browser is refused')
    t.same(await snapshot(app), before, 'nothing recorded for the replay')

    const done = await benBrowser.get(callbackUrl)
    t.equal(done.status, 303, 'the callback completes in the browser that followed the link')
    t.equal(done.location, '/?reauthorized=1', 'back to the home page, which confirms the update')
    const home = await benBrowser.get(new URL(done.location!, app.url).href)
    t.match(home.text, /id="reauthorized"/, 'the user is told it worked')
    t.match(home.text, /read_issuer_capitalizationtablesummary/, 'and sees the new permission')
    t.notMatch((await benBrowser.get(`${app.url}/`)).text, /id="reauthorized"/, 'only right after the link')

    // The link is used by the new grant, the old grant superseded, Ben no longer lacking.
    const row = await app.db.selectFrom('reauth_links').selectAll().where('user_id', '=', ben).executeTakeFirstOrThrow()
    t.ok(row.used_at, 'link marked used')
    const grants = await app.db.selectFrom('grants').selectAll().where('user_id', '=', ben).orderBy('id').execute()
    t.equal(grants.length, 2)
    t.equal(grants[0]!.status, 'superseded', 'the v1 grant is superseded')
    t.equal(grants[1]!.status, 'active')
    t.equal(grants[1]!.app_id, await appId(app.db, 'production-v2'))
    t.equal(row.used_grant_id, grants[1]!.id, 'used by the new grant')
    t.match(await auditRows(app.db, 'link.used'), [{ user_id: ben, rollout_id: rolloutId, grant_id: grants[1]!.id }])

    page = await ops.get(rolloutUrl)
    t.equal(stat(page, 'hold every required scope'), 2, 'covered count moved')
    t.equal(stat(page, 'lack some scope'), 1, 'lacking count moved')
    t.notMatch(page.text, 'ben.hartley@harbor.example', 'Ben left the lacking list')
    t.match(page.text, 'chen.wei@quill.example')
    const benLink = await ops.get(`${app.url}/admin/rollouts/${rolloutId}/links/${ben}`)
    t.match(benLink.text, /<span class="badge ok">used<\/span>/, 'the link shows used')

    // Replay after success, again from a third browser, and the used link itself.
    const afterSuccess = await snapshot(app)
    t.equal((await new Agent().get(callbackUrl)).status, 400, 'replayed callback fails')
    t.equal((await benBrowser.get(callbackUrl)).status, 400, 'even in the same browser: state is single-use')
    t.equal((await new Agent().get(link!)).status, 410, 'the used link says so')
    t.same(await snapshot(app), afterSuccess, 'nothing recorded by replays')

    // Chen's link opened by someone who signs in to Carta as Dana: refused, nothing recorded.
    const chenIssued = await ops.post(`${app.url}/admin/rollouts/${rolloutId}/links`, {
      _csrf: hiddenField(page.text, '_csrf'),
      user_id: String(chen),
    })
    const chenLink = copyBox(await ops.follow(chenIssued), chen)!
    const wrong = new Agent()
    const wrongPage = await wrong.get(chenLink)
    const wrongGo = await wrong.post(chenLink, { _csrf: hiddenField(wrongPage.text, '_csrf') })
    const wrongCallback = await throughSandbox(t, app, wrong, wrongGo.location!, 'cu_1004')
    const beforeMixUp = await snapshot(app)
    const refused = await wrong.get(wrongCallback)
    t.equal(refused.status, 403, 'a different Carta identity is refused')
    t.match(refused.text, 'someone else')
    const afterMixUp = await snapshot(app)
    t.same(afterMixUp.grants, beforeMixUp.grants, 'no grant recorded')
    t.same(afterMixUp.tokens, beforeMixUp.tokens, 'no tokens stored')
    t.same(afterMixUp.links, beforeMixUp.links, 'the link stays unused')
    t.same(afterMixUp.users, beforeMixUp.users, 'no user created or changed (Dana is not added)')
    t.same(afterMixUp.members, beforeMixUp.members, 'membership unchanged')
    t.equal((await auditRows(app.db, 'link.identity_mismatch')).length, 1, 'the mix-up is audited')
    const chenPage = await new Agent().get(chenLink)
    t.equal(chenPage.status, 200, "Chen's link still works for Chen")
  },
)
