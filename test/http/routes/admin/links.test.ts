// The link pages over HTTP: the public page for every bad case (status, audit row, nothing else
// written, no token in the logs), CSRF on every POST, and the operator routes (issue one, bulk,
// CSV checked against the database).
import t, { type Test } from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import type { Db } from '../../../../src/db/index.js'
import { issueLink, linkContextFrom, linkUrl } from '../../../../src/links/links.js'
import { type TestApp, startTestApp } from '../../../helpers/app.js'
import { Agent, hiddenField } from '../../../helpers/browser-agent.js'
import { auditRows, createMember, createRollout, operatorAgent } from '../../../links/fixtures.js'

const DAY = 24 * 60 * 60 * 1000
const TABLES = [
  'end_users',
  'grants',
  'grant_scopes',
  'grant_tokens',
  'oauth_states',
  'sessions',
  'reauth_links',
  'rollout_members',
  'rollouts',
] as const

async function counts(db: Db): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const table of TABLES) {
    const row = await db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    out[table] = Number(row.n)
  }
  return out
}

async function setup(t: Tap, env: Record<string, string> = {}) {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock, env })
  const rollout = await createRollout(app.db, { name: 'Cap table summary for reports', now: clock.now() })
  const userId = await createMember(
    app.app.deps,
    {
      cartaUserId: 'c-ann',
      email: 'ann@example.com',
      appKey: 'production-v1',
      granted: ['read_issuer_info', 'read_user_info'],
    },
    clock.now(),
  )
  const context = linkContextFrom(app.config, clock)
  return { app, clock, rollout, userId, context }
}
type Tap = Test

function noTokenInLogs(t: Tap, app: TestApp, token: string): void {
  const mac = token.split('.')[1] ?? token
  t.notOk(JSON.stringify(app.logs).includes(mac), 'the token never reaches the log')
}

t.test('a valid link shows the new permissions in plain words and one button', async (t) => {
  const { app, rollout, userId, context } = await setup(t)
  const issued = await issueLink(app.db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  const browser = new Agent()
  const page = await browser.get(issued.url)
  t.equal(page.status, 200)
  t.match(page.text, 'See a summary of each company&#39;s cap table', 'the missing scope in plain words')
  t.match(page.text, 'read_issuer_capitalizationtablesummary', 'and its name')
  t.match(page.text, 'Cap table summary for reports', 'why: the rollout')
  t.match(page.text, 'Permissions you already granted')
  t.match(page.text, /<form method="post" action="\/reauthorize\/[^"]+"/)
  t.equal((page.text.match(/<button/g) ?? []).length, 1, 'one button')
  t.ok(hiddenField(page.text, '_csrf'), 'the form carries a CSRF token')
  t.notOk(page.text.includes('<script'), 'no script needed')
  noTokenInLogs(t, app, issued.url.split('/reauthorize/')[1]!)
})

t.test('an unknown scope is described from its name, and its raw name is shown', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const userId = await createMember(
    app.app.deps,
    { cartaUserId: 'c-1', email: 'a@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
    clock.now(),
  )
  // The target app asks for a scope we have no words for.
  await app.db
    .updateTable('oauth_apps')
    .set({ scopes: 'read_issuer_info read_user_info read_widget_frobs' })
    .where('key', '=', 'production-v2')
    .execute()
  const issued = await issueLink(app.db, linkContextFrom(app.config, clock), {
    rolloutId: rollout.id,
    userId,
    issuedBy: 'operator:ops',
  })
  const page = await new Agent().get(issued.url)
  t.equal(page.status, 200)
  // Carta's scope names read read_<area> (src/scopes.ts describeScope): words from the name, then the id.
  t.match(page.text, /See your widget frobs data on Carta\.<\/span> <span class="scope-id">read_widget_frobs<\/span>/)
  t.match(page.text, 'See the list of companies you have access to on Carta')
})

t.test('bad links: clear page, right status, one audit row, nothing else written', async (t) => {
  const { app, clock, rollout, userId, context } = await setup(t)
  const issued = await issueLink(app.db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  const token = issued.url.split('/reauthorize/')[1]!
  const base = `${app.url}/reauthorize/`

  const check = async (
    label: string,
    url: string,
    status: number,
    text: string,
    reason: string,
    expectUser: boolean,
  ) => {
    const before = await counts(app.db)
    const auditBefore = (await auditRows(app.db)).length
    const warnBefore = app.logs.filter((l) => l.level === 40).length
    const res = await new Agent().get(url)
    t.equal(res.status, status, `${label}: status`)
    t.match(res.text, text, `${label}: page says so`)
    t.notMatch(res.text, /<form method="post" action="\/reauthorize/, `${label}: no button`)
    t.same(await counts(app.db), before, `${label}: nothing else written`)
    const audit = (await auditRows(app.db)).slice(auditBefore)
    t.equal(audit.length, 1, `${label}: one audit row`)
    t.match(audit[0], { type: 'link.rejected', actor: 'anonymous', details: { reason } }, `${label}: audit reason`)
    t.equal(audit[0]!.user_id, expectUser ? userId : null, `${label}: audit user`)
    t.ok(app.logs.filter((l) => l.level === 40).length > warnBefore, `${label}: warn log line`)
    t.ok(
      app.logs.some((l) => l.msg === 'reauthorization link refused' && l.reason === reason),
      `${label}: log names the reason`,
    )
  }

  const flipAt = (i: number) => token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
  await check('MAC flipped', base + flipAt(token.length - 2), 404, 'This link is not valid', 'tampered', false)
  await check('payload flipped', base + flipAt(2), 404, 'This link is not valid', 'tampered', false)
  await check('garbage', `${base}not-a-token`, 404, 'This link is not valid', 'tampered', false)
  await check(
    'signed by another key',
    `${base}${linkUrl({ publicUrl: '', secret: 'x'.repeat(40) }, issued.link).split('/reauthorize/')[1]}`,
    404,
    'This link is not valid',
    'tampered',
    false,
  )

  clock.set(issued.link.expires_at)
  await check('expired', issued.url, 410, 'This link has expired — ask for a new one', 'expired', true)
  clock.set(issued.link.expires_at - DAY)

  const archivedRollout = await createRollout(app.db, { name: 'Old', now: clock.now() })
  await createMember(
    app.app.deps,
    { cartaUserId: 'c-bob', email: 'bob@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
    clock.now(),
  ).catch(() => 0)
  const onArchived = await issueLink(app.db, context, {
    rolloutId: archivedRollout.id,
    userId,
    issuedBy: 'operator:ops',
  })
  await app.db
    .updateTable('rollouts')
    .set({ status: 'archived', archived_at: clock.now() })
    .where('id', '=', archivedRollout.id)
    .execute()
  await check('archived rollout', onArchived.url, 410, 'This link is no longer needed', 'archived', true)

  await app.db
    .updateTable('reauth_links')
    .set({ used_at: clock.now(), used_grant_id: 1 })
    .where('id', '=', issued.link.id)
    .execute()
  await check('used', issued.url, 410, 'already been used', 'used', true)

  noTokenInLogs(t, app, token)
})

t.test('POST /reauthorize: CSRF required, and a bad link is refused on the POST too', async (t) => {
  const { app, clock, rollout, userId, context } = await setup(t)
  const issued = await issueLink(app.db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  const browser = new Agent()
  const page = await browser.get(issued.url)
  const csrf = hiddenField(page.text, '_csrf')

  const before = await counts(app.db)
  const noToken = await browser.post(issued.url, {})
  t.equal(noToken.status, 403, 'no CSRF token')
  t.match(noToken.text, 'This form has expired')
  const otherBrowser = await new Agent().post(issued.url, { _csrf: csrf })
  t.equal(otherBrowser.status, 403, "another browser cannot use this browser's token")
  t.same(await counts(app.db), before, 'nothing written')

  clock.set(issued.link.expires_at)
  const expired = await browser.post(issued.url, { _csrf: csrf })
  t.equal(expired.status, 410)
  t.match((await auditRows(app.db, 'link.rejected')).at(-1), { details: { reason: 'expired', method: 'POST' } })
  t.equal(
    Number(
      (
        await app.db
          .selectFrom('oauth_states')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    0,
    'no OAuth state started',
  )
})

t.test('link pages are rate limited', async (t) => {
  const { app } = await setup(t, { RATE_LIMIT_OAUTH_PER_MINUTE: '3' })
  const browser = new Agent()
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await browser.get(`${app.url}/reauthorize/x`)).status)
  t.same(statuses, [404, 404, 404, 429, 429])
})

t.test('operator routes: sign-in required, CSRF, issue one (reused, not multiplied), bulk, CSV', async (t) => {
  const { app, clock, rollout, userId } = await setup(t)
  const bob = await createMember(
    app.app.deps,
    { cartaUserId: 'c-bob', email: '=bob,"b"@example.org', appKey: 'playground', granted: ['read_user_info'] },
    clock.now(),
  )
  await createMember(
    app.app.deps,
    { cartaUserId: 'c-dan', email: 'dan@example.com', appKey: 'production-v2', granted: rollout.scopes },
    clock.now(),
  )
  const linkCount = async () =>
    Number(
      (
        await app.db
          .selectFrom('reauth_links')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    )

  // Not an operator: sent to sign-in, nothing issued.
  const stranger = new Agent()
  const anon = await stranger.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { user_id: String(userId) })
  t.equal(anon.status, 303)
  t.match(anon.location, /^\/admin\/sign-in\?next=/)
  t.equal(
    (await stranger.get(`${app.url}/admin/rollouts/${rollout.id}/links.csv`)).status,
    303,
    'CSV needs an operator',
  )
  t.equal(await linkCount(), 0)

  const ops = await operatorAgent(app)
  const linkPage = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links/${userId}`)

  t.equal(linkPage.status, 200)
  t.match(linkPage.text, 'No link has been issued')
  const csrf = hiddenField(linkPage.text, '_csrf')

  const forged = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { user_id: String(userId) })
  t.equal(forged.status, 403, 'issue without CSRF token refused')
  const forgedBulk = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/bulk`, {})
  t.equal(forgedBulk.status, 403, 'bulk without CSRF token refused')
  t.equal(await linkCount(), 0)

  const one = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { _csrf: csrf, user_id: String(userId) })
  t.equal(one.status, 303)
  t.equal(one.location, `/admin/rollouts/${rollout.id}?link=${userId}#user-${userId}`)
  t.equal(await linkCount(), 1)
  const again = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, {
    _csrf: csrf,
    user_id: String(userId),
    return_to: 'link',
  })
  t.equal(again.location, `/admin/rollouts/${rollout.id}/links/${userId}?reused=1`)
  t.equal(await linkCount(), 1, 'reused, not multiplied')
  const shown = await ops.follow(again)
  t.match(shown.text, 'same link is shown again')
  const url = hiddenValue(shown.text, 'link-url')
  t.match(url, `${app.url}/reauthorize/`)
  t.equal((await new Agent().get(url)).status, 200, 'the copied URL works')
  t.match(await auditRows(app.db, 'link.issued'), [{ actor: 'operator:ops', user_id: userId, rollout_id: rollout.id }])

  const badUser = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { _csrf: csrf, user_id: 'abc' })
  t.equal(badUser.status, 400)
  const noUser = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { _csrf: csrf, user_id: '99999' })
  t.equal(noUser.status, 404)
  const noRollout = await ops.post(`${app.url}/admin/rollouts/999/links`, { _csrf: csrf, user_id: String(userId) })
  t.equal(noRollout.status, 404)

  const bulk = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/bulk`, {
    _csrf: csrf,
    scope: 'read_issuer_info',
    app: '',
    q: '',
  })
  t.equal(bulk.status, 200)
  t.match(bulk.text, /<div class="value">1<\/div><div class="label">new links issued/)
  t.match(bulk.text, `/admin/rollouts/${rollout.id}/links.csv?scope=read_issuer_info`)
  t.equal(await linkCount(), 2)
  t.match(await auditRows(app.db, 'links.issued_bulk'), [
    { actor: 'operator:ops', details: { matched: 1, issued: 1, reused: 0 } },
  ])

  // CSV: every lacking user, with a working link, matching the database.
  const csv = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links.csv`)
  t.equal(csv.status, 200)
  t.match(csv.headers.get('content-type'), /^text\/csv/)
  t.equal(csv.headers.get('content-disposition'), `attachment; filename="rollout-${rollout.id}-links-2025-03-01.csv"`)
  const lines = csv.text.split('\r\n')
  t.equal(lines[0], 'user_id,carta_user_id,email,missing_scopes,link_url,expires_at')
  t.equal(lines.at(-1), '', 'ends with CRLF')
  const rows = lines.slice(1, -1)
  t.equal(rows.length, 2, 'two lacking users; the covered one is not listed')
  const links = await app.db.selectFrom('reauth_links').selectAll().orderBy('user_id').execute()
  t.equal(
    rows[0],
    `${userId},c-ann,ann@example.com,read_issuer_capitalizationtablesummary,${linkUrl({ publicUrl: app.url, secret: app.config.linkSigningSecret }, links[0]!)},${new Date(links[0]!.expires_at).toISOString()}`,
  )
  t.equal(
    rows[1],
    `${bob},c-bob,"'=bob,""b""@example.org",read_issuer_capitalizationtablesummary read_issuer_info,${linkUrl({ publicUrl: app.url, secret: app.config.linkSigningSecret }, links[1]!)},${new Date(links[1]!.expires_at).toISOString()}`,
  )
  t.same(await auditRows(app.db, 'links.exported'), [], 'the download writes nothing, not even an audit row')

  // The GET download only reads (a cross-site navigation can trigger a GET): a user without an
  // outstanding link gets empty link columns and no link is issued.
  await app.db.deleteFrom('reauth_links').execute()
  const auditBefore = (await auditRows(app.db)).length
  const playground = await app.db
    .selectFrom('oauth_apps')
    .select('id')
    .where('key', '=', 'playground')
    .executeTakeFirstOrThrow()
  const readOnly = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links.csv?app=${playground.id}`)
  t.equal(readOnly.status, 200)
  t.equal(
    readOnly.text.split('\r\n')[1],
    `${bob},c-bob,"'=bob,""b""@example.org",read_issuer_capitalizationtablesummary read_issuer_info,,`,
  )
  t.equal(await linkCount(), 0, 'the download issued no link')
  t.equal((await auditRows(app.db)).length, auditBefore, 'and wrote no audit row')

  // Issuing the missing links is the POST (CSRF-protected), which then sends the file.
  const noCsrf = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links.csv`, { app: String(playground.id) })
  t.equal(noCsrf.status, 403, 'the POST without a CSRF token is refused')
  t.equal(await linkCount(), 0)
  const fresh = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links.csv`, {
    _csrf: csrf,
    app: String(playground.id),
    scope: '',
    q: '',
  })
  t.equal(fresh.status, 200)
  t.equal(fresh.text.split('\r\n').length, 3, 'header, bob, trailing empty')
  t.match(fresh.text.split('\r\n')[1], /,http:\/\/127\.0\.0\.1:\d+\/reauthorize\/[^,]+,\d{4}-/, 'bob has a link')
  t.equal(await linkCount(), 1, 'bob got a link from the export')
  t.match(await auditRows(app.db, 'links.exported'), [{ details: { matched: 1, issued: 1, reused: 0 } }])

  const badFilter = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links.csv?scope=read_nothing`)
  t.equal(badFilter.status, 400, 'unknown scope: a page, not a half-written file')
  t.match(badFilter.headers.get('content-type'), /^text\/html/)
  t.equal(
    (await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/bulk`, { _csrf: csrf, scope: 'read_nothing' }))
      .status,
    400,
    'bulk: unknown scope refused',
  )
  t.equal(await linkCount(), 1, 'nothing issued by refused requests')

  await app.db
    .updateTable('rollouts')
    .set({ status: 'archived', archived_at: clock.now() })
    .where('id', '=', rollout.id)
    .execute()
  t.equal(
    (await ops.get(`${app.url}/admin/rollouts/${rollout.id}/links.csv`)).status,
    409,
    'archived rollout: no export',
  )
  t.equal(
    (await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links.csv`, { _csrf: csrf })).status,
    409,
    'archived rollout: no export that issues',
  )
  t.equal(
    (await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, { _csrf: csrf, user_id: String(userId) })).status,
    409,
    'archived rollout: no issue',
  )
})

function hiddenValue(html: string, id: string): string {
  const match = new RegExp(`<input[^>]*id="${id}"[^>]*value="([^"]*)"`).exec(html)
  if (!match) throw new Error(`no input #${id}`)
  return match[1]!.replace(/&amp;/g, '&')
}
