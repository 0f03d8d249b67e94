// Tokens Carta issued but the ledger refused to record must not stay alive at Carta (its refresh
// tokens do not expire by time). After every refusal path of the callback — a granted scope that
// was not requested, a failed user lookup, an identity mismatch on a link, a lost race for a link
// (the transaction rolls back) — and one revocation pass, the sandbox's live refresh tokens are
// exactly the ledger's active grants.
import t, { type Test } from 'tap'
import { issueLink, linkContextFrom } from '../../src/links/links.js'
import { type TestApp, startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { sandboxControl, sandboxStats } from '../helpers/connect.js'
import { createRollout } from '../links/fixtures.js'
import { answerConsent, signIn } from '../sandbox/helpers.js'

async function liveAtCarta(app: TestApp): Promise<number> {
  const stats = (await sandboxStats(app)) as unknown as { tokens: Array<{ kind: string; status: string }> }
  return stats.tokens.filter((tk) => tk.kind === 'refresh' && tk.status === 'live').length
}

async function activeGrants(app: TestApp): Promise<number> {
  const row = await app.db
    .selectFrom('grants')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('status', '=', 'active')
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** One revocation pass, then the sandbox's live tokens against the ledger's active grants. */
async function balanced(t: Test, app: TestApp, label: string): Promise<void> {
  await app.app.jobs.run('revocations')
  await app.app.jobs.idle()
  t.equal(await liveAtCarta(app), await activeGrants(app), `${label}: live tokens at Carta = active grants`)
}

/** Browser at Carta's authorize URL → signed in as `user` → consent → our callback. */
async function callbackFrom(app: TestApp, agent: Agent, authorize: string, user: string) {
  await signIn(agent, `${app.url}/sandbox`, user)
  const back = await answerConsent(agent, authorize, { decision: 'allow' })
  return agent.get(back.toString())
}

async function connect(app: TestApp, user: string, appKey = 'production-v1') {
  const agent = new Agent()
  const start = await agent.get(`${app.url}/carta/connect?app=${appKey}`)
  return callbackFrom(app, agent, start.location!, user)
}

/** Opens a link's page and presses its button: the authorize URL of the link's flow. */
async function followLink(agent: Agent, link: string): Promise<string> {
  const page = await agent.get(link)
  const go = await agent.post(link, { _csrf: hiddenField(page.text, '_csrf') })
  if (go.status !== 303 || !go.location) throw new Error(`link did not start a flow: ${go.status}`)
  return go.location
}

t.test('every refused callback queues the tokens Carta issued for revocation', async (t) => {
  const app = await startTestApp(t)
  t.equal((await connect(app, 'cu_1001')).status, 303, 'a normal connection')
  await balanced(t, app, 'after a connection')

  await sandboxControl(app, 'widen', { addScopes: ['read_issuer_capitalizationtablesummary'] })
  const unasked = await connect(app, 'cu_1002')
  t.equal(unasked.status, 502, 'a granted scope that was not requested is refused')
  await balanced(t, app, 'unrequested scope')

  await sandboxControl(app, 'fail', { endpoint: 'api', status: 503, times: 1 })
  const lookup = await connect(app, 'cu_1003')
  t.ok(lookup.status >= 500 && lookup.status !== 500, `a failed user lookup is refused (${lookup.status})`)
  await balanced(t, app, 'user lookup failure')

  const rollout = await createRollout(app.db, { appKey: 'production-v2', now: app.clock.now() })
  const user = await app.db
    .selectFrom('end_users')
    .select('id')
    .where('carta_user_id', '=', 'cu_1001')
    .executeTakeFirstOrThrow()
  const context = linkContextFrom(app.config, app.clock)
  const { url: link } = await issueLink(app.db, context, { rolloutId: rollout.id, userId: user.id, issuedBy: 'test' })
  const stranger = new Agent()
  const mismatch = await callbackFrom(app, stranger, await followLink(stranger, link), 'cu_1004')
  t.equal(mismatch.status, 403, 'another Carta identity through the link is refused')
  await balanced(t, app, 'identity mismatch')

  // Two browsers of the same person follow the same link; the second callback loses the link.
  const first = new Agent()
  const second = new Agent()
  const firstAuthorize = await followLink(first, link)
  const secondAuthorize = await followLink(second, link)
  t.equal((await callbackFrom(app, first, firstAuthorize, 'cu_1001')).status, 303, 'the first one is recorded')
  const lost = await callbackFrom(app, second, secondAuthorize, 'cu_1001')
  t.ok(lost.status >= 400 && lost.status < 500, `the second one is refused (${lost.status})`)
  await balanced(t, app, 'lost link race (rolled-back transaction)')

  const queued = await app.db.selectFrom('token_revocations').selectAll().where('grant_id', 'is', null).execute()
  t.ok(queued.length >= 8, 'the unrecorded tokens went through the queue')
  t.ok(
    queued.every((r) => r.status === 'done' && r.token === ''),
    'all sent, no ciphertext kept',
  )
  t.notOk(
    app.logs.some((l) => Number(l.level) >= 50),
    'no error log lines',
  )
})
