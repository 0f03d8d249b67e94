import t from 'tap'
import { buildRollouts, startTestApp } from '../../../helpers/app.js'
import { hiddenField } from '../../../helpers/browser-agent.js'
import { listLacking } from '../../../../src/rollouts/lacking.js'
import { addGrant, addUser, appId, breakGrant, signedInOperator } from '../../../helpers/ledger.js'

const V1 = ['read_issuer_info', 'read_user_info']
const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']
const CAP = 'read_issuer_capitalizationtablesummary'

t.test('creating a rollout: validation, then the page, archive', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const now = ctx.clock.now()
  const agent = await signedInOperator(db, url, now)
  const v2 = await appId(db, 'production-v2')
  const u1 = await addUser(db, now, { carta: 'c-1', email: 'one@example.com' })
  await addGrant(ctx.app.deps, u1, 'production-v1', V1, now - 1000)
  const u2 = await addUser(db, now, { carta: 'c-2', email: 'two@example.com' })
  await addGrant(ctx.app.deps, u2, 'production-v2', [...V2, 'readwrite_more'], now - 500)

  const dash = await agent.get(`${url}/admin`)
  t.equal(dash.status, 200)
  t.match(dash.text, 'No active rollout yet')
  t.match(dash.text, `value="${v2}:${CAP}" checked`, 'every scope of the default app checked')
  const csrf = hiddenField(dash.text, '_csrf')

  const bad: Array<[Record<string, string | string[]>, string]> = [
    [{ name: '', app_id: String(v2), scopes: V2 }, 'Give the rollout a name'],
    [{ name: 'x', app_id: String(v2) }, 'Choose at least one required scope'],
    [
      { name: 'x', app_id: String(v2), scopes: ['read_user_info', 'readwrite_everything'] },
      'does not request readwrite_everything',
    ],
    [{ name: 'x', app_id: '9999', scopes: V2 }, 'does not exist'],
    [{ name: 'x', app_id: 'abc', scopes: V2 }, 'Choose the target app'],
    [{ name: 'x'.repeat(121), app_id: String(v2), scopes: V2 }, 'at most 120'],
  ]
  for (const [form, message] of bad) {
    const res = await agent.post(`${url}/admin/rollouts`, { _csrf: csrf, ...form })
    t.equal(res.status, 400, message)
    t.match(res.text, message)
  }
  await db.updateTable('oauth_apps').set({ status: 'retired' }).where('key', '=', 'playground').execute()
  const retired = await agent.post(`${url}/admin/rollouts`, {
    _csrf: csrf,
    name: 'x',
    app_id: String(await appId(db, 'playground')),
    scopes: ['read_user_info'],
  })
  t.equal(retired.status, 400)
  t.match(retired.text, 'retired')
  t.equal((await db.selectFrom('rollouts').selectAll().execute()).length, 0, 'no rollout from a rejected form')
  t.ok(ctx.logs.some((l) => l.msg === 'rollout form rejected' && l.level === 40))

  const created = await agent.post(`${url}/admin/rollouts`, {
    _csrf: csrf,
    name: 'Cap table',
    app_id: String(v2),
    scopes: V2,
  })
  t.equal(created.status, 303)
  // The route returns before the membership is measured; the build runs in the background.
  await buildRollouts(ctx.app)
  t.equal(
    (await db.selectFrom('rollouts').select('build_status').where('id', '=', 1).executeTakeFirstOrThrow()).build_status,
    'ready',
  )
  t.ok(
    ctx.logs.some((l) => l.msg === 'rollout built' && l.rolloutId === 1),
    'the build is logged',
  )
  const page = await agent.get(new URL(created.location!, url).toString())
  t.equal(page.status, 200)
  t.match(page.text, 'Cap table')
  t.match(page.text, /50\.0%<\/div><div class="label">coverage: 1 of 2 users/)
  t.match(page.text, 'one@example.com', 'the v1 user is listed')
  t.notMatch(page.text, 'two@example.com', 'a user holding more scopes than required is not listed')
  t.match(page.text, `<li class="scope missing" title="missing">${CAP}</li>`)
  t.match(page.text, 'action="/admin/rollouts/1/links"')
  t.match(page.text, 'action="/admin/rollouts/1/links/bulk"')
  t.match(page.text, '/admin/rollouts/1/links.csv')
  t.match(page.text, '<span class="badge">no link</span>')
  // Issuing a link from the row: back on the page the row shows "issued, not emailed" (nothing
  // is called sent unless it was emailed), names the person, and offers a copy box.
  const issued = await agent.post(`${url}/admin/rollouts/1/links`, {
    _csrf: hiddenField(page.text, '_csrf'),
    user_id: String(u1),
  })
  t.equal(issued.status, 303)
  const withLink = await agent.get(new URL(issued.location!, url).toString())
  t.equal(withLink.status, 200)
  t.match(withLink.text, /A reauthorization link is ready for <a href="\/admin\/users\/\d+">one@example.com<\/a>/)
  t.match(withLink.text, '<span class="badge ">issued, not emailed</span>')
  t.notMatch(withLink.text, '>sent<')
  t.match(withLink.text, new RegExp(`id="link-${u1}"[^>]*value="${url}/reauthorize/`))
  t.match(withLink.text, `data-copy="link-${u1}"`)
  const dash2 = await agent.get(`${url}/admin`)
  t.match(dash2.text, /50\.0%<\/strong> <span class="muted">\(1 of 2\)/)

  // Everyone covered → plain empty state.
  await addGrant(ctx.app.deps, u1, 'production-v2', V2, now)
  const done = await agent.get(`${url}/admin/rollouts/1`)
  t.match(done.text, 'Everyone holds the required scopes')
  const filtered = await agent.get(`${url}/admin/rollouts/1?q=nobody`)
  t.match(filtered.text, 'No user matches this filter')

  // Archiving asks first: the page links to a confirmation; a POST without it only asks again.
  t.match(done.text, 'href="/admin/rollouts/1/archive"')
  const unconfirmed = await agent.post(`${url}/admin/rollouts/1/archive`, { _csrf: hiddenField(done.text, '_csrf') })
  t.equal(unconfirmed.status, 200)
  t.match(unconfirmed.text, 'Archive Cap table?')
  t.equal((await db.selectFrom('rollouts').select('status').executeTakeFirstOrThrow()).status, 'active', 'not yet')
  const confirmPage = await agent.get(`${url}/admin/rollouts/1/archive`)
  t.equal(confirmPage.status, 200)
  t.match(confirmPage.text, 'name="confirm" value="yes"')
  const archive = await agent.post(`${url}/admin/rollouts/1/archive`, {
    _csrf: hiddenField(confirmPage.text, '_csrf'),
    confirm: 'yes',
  })
  t.equal(archive.status, 303)
  const after = await agent.get(`${url}/admin`)
  t.match(after.text, 'Archived')
  t.match(after.text, '<span class="badge">archived</span>')
  const events = await db
    .selectFrom('audit_events')
    .select(['type', 'actor'])
    .where('rollout_id', '=', 1)
    .where('type', 'like', 'rollout.%')
    .orderBy('id')
    .execute()
  t.same(events, [
    { type: 'rollout.created', actor: 'operator:ops' },
    { type: 'rollout.archived', actor: 'operator:ops' },
  ])

  // Undo: unarchive makes it active again and measures everyone afresh (u1 moved to v2 meanwhile).
  const archivedPage = await agent.get(`${url}/admin/rollouts/1`)
  t.match(archivedPage.text, 'Unarchive this rollout')
  await db.deleteFrom('rollout_counts').where('rollout_id', '=', 1).execute() // stale figures must not survive
  const unarchived = await agent.post(`${url}/admin/rollouts/1/unarchive`, {
    _csrf: hiddenField(archivedPage.text, '_csrf'),
  })
  t.equal(unarchived.status, 303)
  await buildRollouts(ctx.app)
  const restored = await agent.get(`${url}/admin/rollouts/1`)
  t.match(restored.text, '<span class="badge ok">active</span>')
  t.match(restored.text, /100\.0%<\/div><div class="label">coverage: 2 of 2 users/)
  t.equal(
    (await db.selectFrom('audit_events').select('type').where('type', '=', 'rollout.unarchived').execute()).length,
    1,
  )

  t.equal((await agent.get(`${url}/admin/rollouts/999`)).status, 404)
  t.equal((await agent.get(`${url}/admin/rollouts/abc`)).status, 404)
})

t.test('lacking list: keyset paging without duplicates or gaps, filters, sorts, 400s', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const now = ctx.clock.now()
  const v1 = await appId(db, 'production-v1')
  const v2 = await appId(db, 'production-v2')
  const expected = { all: [] as number[], cap: [] as number[], user: [] as number[], onV1: [] as number[] }
  for (let i = 0; i < 130; i++) {
    const u = await addUser(db, now, {
      carta: `c-${String(i).padStart(3, '0')}`,
      email: `u${String(i).padStart(3, '0')}@example.com`,
    })
    // Several users share an authorization time so the (time, id) keyset must break ties.
    const at = now - 1000 * (i % 17)
    if (i % 5 === 0)
      await addGrant(ctx.app.deps, u, 'production-v2', V2, at) // covered
    else if (i % 5 === 1) await addGrant(ctx.app.deps, u, 'production-v2', ['read_issuer_info'], at)
    else if (i % 5 === 4) {
      await addGrant(ctx.app.deps, u, 'production-v2', V2, at)
      await breakGrant(ctx.app.deps, u, at)
    } else await addGrant(ctx.app.deps, u, 'production-v1', V1, at)
    if (i % 5 !== 0) expected.all.push(u)
    if (i % 5 !== 0) expected.cap.push(u)
    if (i % 5 === 1 || i % 5 === 4) expected.user.push(u)
    if (i % 5 === 2 || i % 5 === 3) expected.onV1.push(u)
  }
  const { createRollout } = await import('../../../../src/rollouts/rollouts.js')
  const rid = await createRollout(db, { name: 'R', appId: v2, scopes: V2 }, 'operator:test', now)

  const walk = async (filter: Parameters<typeof listLacking>[2]) => {
    const seen: Array<{ userId: number; authorizedAt: number }> = []
    let after: string | undefined
    let pages = 0
    do {
      const r = await listLacking(db, rid, filter, after ? { after, limit: 20 } : { limit: 20 })
      seen.push(...r.rows)
      after = r.nextCursor ?? undefined
      pages++
    } while (after && pages < 100)
    return seen
  }
  const ids = (rows: Array<{ userId: number }>) => rows.map((r) => r.userId)
  t.same(ids(await walk({ sort: 'user' })), expected.all, 'every lacking user once, in id order')
  t.same(ids(await walk({ sort: 'user', scope: CAP })), expected.cap)
  t.same(ids(await walk({ sort: 'user', scope: 'read_user_info' })), expected.user)
  t.same(ids(await walk({ sort: 'user', appId: v1 })), expected.onV1)
  t.same(
    ids(await walk({ sort: 'user', scope: 'read_user_info', appId: v2 })),
    expected.user.filter((u) => !expected.onV1.includes(u)).filter((u) => (u - 1) % 5 === 1),
  )
  for (const sort of ['oldest', 'newest'] as const) {
    const rows = await walk({ sort })
    t.same(
      [...ids(rows)].sort((a, b) => a - b),
      expected.all,
      `${sort}: no duplicates or gaps`,
    )
    const key = (r: { userId: number; authorizedAt: number }) => r.authorizedAt * 1e6 + r.userId
    const sorted = [...rows].sort((a, b) => (sort === 'oldest' ? key(a) - key(b) : key(b) - key(a)))
    t.same(ids(rows), ids(sorted), `${sort}: ordered by (last authorized, id)`)
    const capRows = await walk({ sort, scope: CAP, appId: v1 })
    t.same(
      [...ids(capRows)].sort((a, b) => a - b),
      expected.onV1,
      `${sort} with scope and app filters`,
    )
  }
  t.same(
    ids(await walk({ sort: 'user', search: 'u01' })),
    expected.all.filter((u) => u >= 11 && u <= 20),
    'email prefix',
  )
  t.same(ids(await walk({ sort: 'user', search: 'c-002' })), [3], 'exact Carta id')

  // Through HTTP: the next-page link, and 400 for bad values.
  const agent = await signedInOperator(db, url, now)
  const first = await agent.get(`${url}/admin/rollouts/${rid}?sort=newest`)
  t.equal(first.status, 200)
  const next = /href="([^"]*after=[^"]*)#lacking">Next page/.exec(first.text)
  t.ok(next, 'a next-page link')
  const second = await agent.get(new URL(next![1]!.replace(/&amp;/g, '&'), url).toString())
  t.equal(second.status, 200)
  t.match(second.text, 'First page')
  for (const q of [
    'scope=readwrite_unknown',
    'scope=read%20user',
    'after=abc',
    'sort=newest&after=12',
    'sort=sideways',
    'app=999',
    'app=x',
    'after=1.2',
  ]) {
    const res = await agent.get(`${url}/admin/rollouts/${rid}?${q}`)
    t.equal(res.status, 400, q)
  }
  t.ok(
    ctx.logs.some((l) => l.level === 40 && l.msg === 'Bad page cursor'),
    'a warn line for a bad cursor',
  )
})

t.test('user page', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const now = ctx.clock.now()
  const u = await addUser(db, now, { carta: 'c-9', email: 'nine@example.com', name: 'Nina' })
  await addGrant(ctx.app.deps, u, 'production-v1', ['read_user_info'], now - 5000)
  await addGrant(ctx.app.deps, u, 'production-v2', V1, now)
  const { recordAudit } = await import('../../../../src/audit/events.js')
  await recordAudit(db, now, {
    type: 'grant.created',
    actor: `user:${u}`,
    userId: u,
    details: { app: 'production-v2' },
  })
  const agent = await signedInOperator(db, url, now)
  const page = await agent.get(`${url}/admin/users/${u}`)
  t.equal(page.status, 200)
  t.match(page.text, 'Nina')
  t.match(page.text, 'c-9')
  t.match(page.text, 'superseded')
  t.match(page.text, 'Production v2')
  t.match(page.text, 'grant.created')
  t.match(page.text, `href="/admin/users/${u}/revoke"`)
  t.match(page.text, 'reported')
  t.equal((await agent.get(`${url}/admin/users/4242`)).status, 404)
  t.equal((await agent.get(`${url}/admin/users/nope`)).status, 404)
})

t.test('new-rollout form: the chosen app is the one created; a duplicate warns first', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const agent = await signedInOperator(db, url, ctx.clock.now())
  const v1 = await appId(db, 'production-v1')
  const v2 = await appId(db, 'production-v2')
  const dash = await agent.get(`${url}/admin`)
  const csrf = hiddenField(dash.text, '_csrf')
  // One form: every app's scopes in its own fieldset, the app picker in the same form.
  t.match(dash.text, `<fieldset class="scope-choice" data-app="${v1}"`)
  t.match(dash.text, `value="${v2}:${CAP}" checked`)
  t.notMatch(dash.text, 'Show its scopes', 'no second submit')

  // Production v1 chosen while v2's boxes (all ticked by default) are submitted too, as a browser
  // without JavaScript does: only v1's boxes count.
  const form = {
    _csrf: csrf,
    name: 'Issuer info',
    app_id: String(v1),
    app_scopes: [`${v1}:read_issuer_info`, ...V2.map((s) => `${v2}:${s}`)],
  }
  const created = await agent.post(`${url}/admin/rollouts`, form)
  t.equal(created.status, 303)
  t.match(await db.selectFrom('rollouts').select(['app_id', 'required_scopes']).executeTakeFirstOrThrow(), {
    app_id: v1,
    required_scopes: 'read_issuer_info',
  })

  // Nothing ticked for the chosen app: refused, although other apps' boxes were ticked.
  const none = await agent.post(`${url}/admin/rollouts`, { ...form, app_scopes: V2.map((s) => `${v2}:${s}`) })
  t.equal(none.status, 400)
  t.match(none.text, 'Choose at least one required scope')
  t.equal(
    (await agent.post(`${url}/admin/rollouts`, { ...form, app_scopes: ['x:read_user_info'] })).status,
    400,
    'a malformed box value is a 400',
  )

  // The same app and scopes again: a warning naming the active rollout, nothing created yet.
  const dup = await agent.post(`${url}/admin/rollouts`, { ...form, name: 'Again' })
  t.equal(dup.status, 409)
  t.match(dup.text, 'id="duplicate-warning"')
  t.match(dup.text, '<a href="/admin/rollouts/1">Issuer info</a> already targets Production v1')
  t.match(dup.text, 'name="confirm_duplicate" value="1"')
  t.match(dup.text, `<option value="${v1}" selected>`, 'the form keeps the chosen app')
  t.equal((await db.selectFrom('rollouts').select('id').execute()).length, 1)
  t.ok(ctx.logs.some((l) => l.msg === 'new rollout duplicates an active one: asked to confirm'))
  const confirmed = await agent.post(`${url}/admin/rollouts`, { ...form, name: 'Again', confirm_duplicate: '1' })
  t.equal(confirmed.status, 303)
  t.equal((await db.selectFrom('rollouts').select('id').execute()).length, 2)
})

t.test('the done view: covered users and when they came over, newest first, keyset pages', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const now = ctx.clock.now()
  const agent = await signedInOperator(db, url, now)
  const users: number[] = []
  for (let i = 0; i < 55; i++) {
    const u = await addUser(db, now, { carta: `d-${i}`, email: `done${i}@example.com` })
    await addGrant(ctx.app.deps, u, 'production-v2', V2, now - 60_000 * (i + 1))
    users.push(u)
  }
  const lacking = await addUser(db, now, { carta: 'l-1', email: 'lacking@example.com' })
  await addGrant(ctx.app.deps, lacking, 'production-v1', V1, now)
  const dash = await agent.get(`${url}/admin`)
  const created = await agent.post(`${url}/admin/rollouts`, {
    _csrf: hiddenField(dash.text, '_csrf'),
    name: 'Cap table',
    app_id: String(await appId(db, 'production-v2')),
    scopes: V2,
  })
  await buildRollouts(ctx.app)
  const path = created.location!
  t.match((await agent.get(`${url}${path}`)).text, `href="${path}/done"`, 'linked from the rollout page')
  const first = await agent.get(`${url}${path}/done`)
  t.equal(first.status, 200)
  t.match(first.text, 'The <strong>55</strong> of 56 users')
  t.notMatch(first.text, 'lacking@example.com', 'only covered users')
  const order = [...first.text.matchAll(/>done(\d+)@example.com</g)].map((m) => Number(m[1]))
  t.same(order.slice(0, 3), [0, 1, 2], 'most recently come over first')
  t.equal(order.length, 50)
  const next = /href="([^"]*before=[^"]*)">Earlier/.exec(first.text)![1]!
  const second = await agent.get(`${url}${next}`)
  t.same(
    [...second.text.matchAll(/>done(\d+)@example.com</g)].map((m) => Number(m[1])),
    [50, 51, 52, 53, 54],
    'the rest, no gap or duplicate',
  )
  t.equal((await agent.get(`${url}${path}/done?before=1.99999999999`)).status, 400)
  t.equal((await agent.get(`${url}/admin/rollouts/999/done`)).status, 404)
})
