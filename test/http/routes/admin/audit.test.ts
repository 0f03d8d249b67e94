// Audit trail: the whole story of a user in /admin/audit, filters, keyset pages,
// CSV with the same filters, and no token or secret in any event.
import t from 'tap'
import type { ManualClock } from '../../../../src/clock.js'
import { AUDIT_EVENT_TYPES, recordAudit } from '../../../../src/audit/events.js'
import { processDueRevocations } from '../../../../src/grants/revocation.js'
import { readTokens } from '../../../../src/grants/tokens.js'
import { startTestApp } from '../../../helpers/app.js'
import { hiddenField } from '../../../helpers/browser-agent.js'
import { connectUser, expireTokens, finishAuthorization, signInOperator } from '../../../helpers/connect.js'

t.test('full flow: every event on the audit page, filters, CSV, and no secret anywhere', async (t) => {
  const app = await startTestApp(t)
  const secrets = new Set<string>([
    app.config.sessionSecret,
    app.config.linkSigningSecret,
    ...app.config.apps.map((a) => a.clientSecret),
  ])
  const remember = async (grantId: number) => {
    const tokens = await readTokens(app.db, app.app.deps.cipher, grantId)
    if (tokens) for (const v of [tokens.accessToken, tokens.refreshToken]) if (v) secrets.add(v)
  }
  const { agent, userId, grantId } = await connectUser(app, { appKey: 'production-v1' })
  await remember(grantId)
  expireTokens(app)
  t.equal((await agent.get(`${app.url}/features/issuers`)).status, 200, 'refresh')
  await remember(grantId)
  const gate = await agent.get(`${app.url}/features/issuers/iss_lumen/cap-table`)
  const start = await agent.post(`${app.url}/features/cap-table/reauthorize`, {
    _csrf: hiddenField(gate.text, '_csrf'),
    returnTo: '/features/issuers/iss_lumen/cap-table',
  })
  const second = await finishAuthorization(app, agent, start.location!)
  await remember(second.grantId)
  await processDueRevocations({ ...app.app.deps })
  const operator = await signInOperator(app)
  const confirm = await operator.get(`${app.url}/admin/users/${userId}/revoke`)
  await operator.post(`${app.url}/admin/users/${userId}/revoke`, { _csrf: hiddenField(confirm.text, '_csrf') })

  const events = await app.db.selectFrom('audit_events').selectAll().orderBy('id').execute()
  const types = new Set(events.map((e) => e.type))
  for (const type of ['grant.refreshed', 'token.revoked', 'grant.revoked_by_operator'])
    t.ok(types.has(type), `has ${type}`)
  t.ok(secrets.size >= 7, 'collected tokens and secrets to look for')
  for (const event of events) {
    const text = JSON.stringify(event)
    for (const secret of secrets) t.notOk(text.includes(secret), `event ${event.id} (${event.type}) holds no secret`)
  }

  const page = await operator.get(`${app.url}/admin/audit`)
  t.equal(page.status, 200)
  t.match(page.text, /grant\.revoked_by_operator/)
  t.match(page.text, /<option value="token\.revoked">/)
  for (const secret of secrets) t.notOk(page.text.includes(secret), 'no secret on the page')
  // Newest first.
  t.ok(page.text.indexOf('title="grant.revoked_by_operator"') < page.text.indexOf('title="grant.refreshed"'))

  const byType = await operator.get(`${app.url}/admin/audit?type=grant.refreshed`)
  t.match(byType.text, /grant\.refreshed/)
  t.notMatch(byType.text, 'title="token.revoked"')
  const byUser = await operator.get(`${app.url}/admin/audit?user=${userId + 1000}`)
  t.match(byUser.text, /No audit events match these filters/)

  const csv = await operator.get(`${app.url}/admin/audit.csv?user=${userId}`)
  t.equal(csv.status, 200)
  t.match(csv.headers.get('content-type'), /text\/csv/)
  t.match(csv.headers.get('content-disposition'), /attachment; filename="audit-\d{4}-\d{2}-\d{2}\.csv"/)
  const lines = csv.text.trim().split('\r\n')
  t.equal(lines[0], 'id,at_iso,type,actor,user_id,grant_id,app_id,rollout_id,details')
  const userEvents = events.filter((e) => e.user_id === userId)
  t.equal(lines.length - 1, userEvents.length, 'CSV has every event of the user')
  t.ok(lines.slice(1).every((l) => l.split(',')[4] === String(userId)))
  for (const secret of secrets) t.notOk(csv.text.includes(secret), 'no secret in the CSV')
  const typed = await operator.get(`${app.url}/admin/audit.csv?type=grant.revoked_by_operator`)
  t.equal(typed.text.trim().split('\r\n').length, 2, 'the same filters apply to the CSV')

  const anonymous = await agent.get(`${app.url}/admin/audit`)
  t.equal(anonymous.status, 303, 'operators only')
  t.equal((await agent.get(`${app.url}/admin/audit.csv`)).status, 303)
})

t.test('date range, keyset pages and bad filters', async (t) => {
  const app = await startTestApp(t)
  const clock = app.clock as ManualClock
  clock.set(Date.UTC(2025, 0, 10, 12))
  for (let i = 0; i < 120; i++) {
    await recordAudit(app.db, Date.UTC(2025, 0, 10 + Math.floor(i / 40), 9, 0, i % 40), {
      type: 'report.run',
      actor: 'system',
      userId: 1 + (i % 3),
      details: { runId: i, status: 'succeeded' },
    })
  }
  clock.set(Date.UTC(2025, 0, 10, 12))
  const operator = await signInOperator(app)
  const day = await operator.get(`${app.url}/admin/audit?from=2025-01-11&to=2025-01-11&type=report.run&tz=UTC`)
  t.equal(day.status, 200)
  t.equal((day.text.match(/title="report\.run"/g) ?? []).length, 40, 'one day (inclusive) of events')

  const seen: string[] = []
  let url: string | null = `${app.url}/admin/audit?type=report.run`
  let pages = 0
  while (url) {
    const res = await operator.get(url)
    pages++
    seen.push(...[...res.text.matchAll(/Coverage report run (\d+): succeeded/g)].map((m) => m[1]!))
    const next = /href="([^"]*before=[^"]*)">Older events/.exec(res.text)?.[1]
    url = next ? `${app.url}${next.replace(/&amp;/g, '&')}` : null
  }
  t.equal(pages, 3, '50 per page')
  t.equal(seen.length, 120, 'every event once')
  t.equal(new Set(seen).size, 120, 'no duplicates across pages')
  t.equal(seen[0], '119', 'newest first')

  for (const query of [
    'user=abc',
    'from=2025-02-30',
    'to=yesterday',
    'type=DROP%20TABLE',
    'from=2025-01-12&to=2025-01-10',
    'before=x',
  ]) {
    const res = await operator.get(`${app.url}/admin/audit?${query}`)
    t.equal(res.status, 400, query)
  }
  t.equal((await operator.get(`${app.url}/admin/audit.csv?from=nope`)).status, 400)
})

t.test('a CSV export that fails mid-stream is cut off, not ended: the download is visibly incomplete', async (t) => {
  const app = await startTestApp(t)
  const operator = await signInOperator(app)
  const cookie = `sl_session=${operator.cookieValue(app.url, 'sl_session')}`
  const now = app.clock.now()
  for (let i = 0; i < 600; i++) await recordAudit(app.db, now - i, { type: 'grant.created', actor: 'system' })
  // An event whose time no date can hold: turning it into a CSV line throws. Newest first, it
  // comes in the second batch of 500, after the first has gone out.
  await recordAudit(app.db, -9e15, { type: 'grant.created', actor: 'system' })

  const res = await fetch(`${app.url}/admin/audit.csv`, { headers: { cookie } })
  t.equal(res.status, 200, 'the download started')
  await t.rejects(res.text(), 'reading the body fails: the transfer was aborted, not ended')
  t.ok(
    app.logs.some((l) => l.level === 50 && String(l.msg).includes('CSV export failed mid-stream')),
    'the failure is logged',
  )
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'the server carries on')

  // Failing before the first row: an ordinary error page, nothing streamed.
  await app.db.deleteFrom('audit_events').where('at', '>', 0).execute()
  const early = await fetch(`${app.url}/admin/audit.csv`, { headers: { cookie } })
  t.equal(early.status, 500)
  t.match(await early.text(), /Something went wrong/)
})

t.test('the type filter offers exactly the event types the app writes, and refuses others', async (t) => {
  const app = await startTestApp(t)
  const operator = await signInOperator(app)
  const page = await operator.get(`${app.url}/admin/audit`)
  const offered = [...page.text.matchAll(/<option value="([^"]+)"/g)].map((m) => m[1])
  t.same(offered, [...AUDIT_EVENT_TYPES], 'one option per written type, in order')
  t.equal((await operator.get(`${app.url}/admin/audit?type=report.run`)).status, 200)
  t.equal((await operator.get(`${app.url}/admin/audit?type=operator.signed_in`)).status, 400, 'never written')
})

t.test('the trail reads in words: names linked, no JSON or epoch numbers, the time zone named', async (t) => {
  const app = await startTestApp(t, { env: { REPORT_TIMEZONE: 'UTC' } })
  const now = Date.UTC(2025, 6, 1, 22, 30)
  const user = await app.db
    .insertInto('end_users')
    .values({
      carta_user_id: 'cu_1002',
      local_key: null,
      email: 'ben@example.com',
      name: 'Ben Hartley',
      active_grant_id: null,
      status: 'connected',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  const v2 = await app.db
    .selectFrom('oauth_apps')
    .select('id')
    .where('key', '=', 'production-v2')
    .executeTakeFirstOrThrow()
  const rollout = await app.db
    .insertInto('rollouts')
    .values({
      name: 'Cap table summary',
      app_id: v2.id,
      required_scopes: 'read_user_info',
      created_by: 'operator:ops',
      created_at: now,
      archived_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  await recordAudit(app.db, now, {
    type: 'link.issued',
    actor: 'operator:ops',
    userId: user.id,
    rolloutId: rollout.id,
    details: { linkId: 7, expiresAt: now + 14 * 86_400_000 },
  })
  await recordAudit(app.db, now, {
    type: 'grant.created',
    actor: `user:${user.id}`,
    userId: user.id,
    appId: v2.id,
    details: { app: 'production-v2', requested: 'read_user_info', granted: 'read_user_info', source: 'reported' },
  })
  const operator = await signInOperator(app)
  const page = await operator.get(`${app.url}/admin/audit`)
  t.equal(page.status, 200)
  t.match(page.text, `<a href="/admin/users/${user.id}">Ben Hartley</a>`, 'the person by name, linked')
  t.match(page.text, `Rollout <a href="/admin/rollouts/${rollout.id}">Cap table summary</a>`, 'the rollout by name')
  t.match(page.text, 'App <a href="/admin/apps">Production v2</a>', 'the app by name')
  t.match(page.text, 'ops (operator)')
  t.match(page.text, 'Reauthorization link 7 issued, valid until 2025-07-15 22:30:00.')
  t.match(page.text, 'Granted read_user_info through Production v2.')
  t.notMatch(page.text, '&quot;', 'no JSON on the page')
  t.notMatch(page.text, String(now), 'no epoch numbers')
  t.match(page.text, 'Times and dates are in <strong>UTC</strong>')

  // In the operator's zone: the browser's (cookie from app.js) or one chosen on the page.
  const paris = await operator.get(`${app.url}/admin/audit?tz=Europe/Paris`)
  t.match(paris.text, 'Times and dates are in <strong>Europe/Paris</strong> (chosen below)')
  t.match(paris.text, '2025-07-02 00:30:00', 'the same instant, shown in Paris (CEST, UTC+2)')
  const session = operator.cookieNames(app.url).map((n) => `${n}=${operator.cookieValue(app.url, n)}`)
  const tokyo = await fetch(`${app.url}/admin/audit`, {
    headers: { cookie: [...session, 'sl_tz=Asia%2FTokyo'].join('; ') },
  })
  t.match(await tokyo.text(), 'in <strong>Asia/Tokyo</strong> (your browser’s time zone)')
  // A day filter is a day in that zone: 2 July in Paris starts 22:00 UTC on 1 July.
  const day = await operator.get(`${app.url}/admin/audit?tz=Europe/Paris&from=2025-07-02&to=2025-07-02`)
  t.match(day.text, 'Ben Hartley')
  const utcDay = await operator.get(`${app.url}/admin/audit?tz=UTC&from=2025-07-02&to=2025-07-02`)
  t.match(utcDay.text, 'No audit events match these filters')
  const bad = await operator.get(`${app.url}/admin/audit?tz=Mars/Olympus`)
  t.equal(bad.status, 400, 'an unknown zone is a 400 page')
})
