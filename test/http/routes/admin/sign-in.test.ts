import t from 'tap'
import { createOperator } from '../../../../src/admin/operators.js'
import { Agent, hiddenField } from '../../../helpers/browser-agent.js'
import { startTestApp } from '../../../helpers/app.js'
import { OPERATOR_PASSWORD, signedInOperator, signedSessionCookie } from '../../../helpers/ledger.js'

t.test(
  'right password signs in with a new session id; wrong password gets 401 and a log line without it',
  async (t) => {
    const ctx = await startTestApp(t)
    await createOperator(ctx.db, 'ops', OPERATOR_PASSWORD, ctx.clock.now())
    const agent = new Agent()

    const anonymous = await agent.get(`${ctx.url}/admin`)
    t.equal(anonymous.status, 303)
    t.equal(anonymous.location, '/admin/sign-in?next=%2Fadmin')

    const page = await agent.get(`${ctx.url}/admin/sign-in?next=/admin/rollouts/7`)
    t.equal(page.status, 200)
    t.match(page.text, 'Operator sign-in')
    const csrf = hiddenField(page.text, '_csrf')
    const sidBefore = (await ctx.db.selectFrom('sessions').select('sid').execute()).map((s) => s.sid)
    t.equal(sidBefore.length, 1, 'the sign-in page created a session for its CSRF secret')

    const wrong = await agent.post(`${ctx.url}/admin/sign-in`, {
      _csrf: csrf,
      username: 'ops',
      password: 'not the password',
      next: '/admin',
    })
    t.equal(wrong.status, 401)
    t.match(wrong.text, 'Wrong username or password')
    t.match(wrong.text, 'name="password"', 'the form is shown again')
    const warn = ctx.logs.find((l) => l.msg === 'operator sign-in failed')
    t.ok(warn, 'a warn line is logged')
    t.equal(warn?.level, 40)
    t.notOk(JSON.stringify(ctx.logs).includes('not the password'), 'the password never reaches the log')

    const unknown = await agent.post(`${ctx.url}/admin/sign-in`, {
      _csrf: hiddenField(wrong.text, '_csrf'),
      username: 'nobody',
      password: OPERATOR_PASSWORD,
    })
    t.equal(unknown.status, 401)

    const right = await agent.post(`${ctx.url}/admin/sign-in`, {
      _csrf: hiddenField(unknown.text, '_csrf'),
      username: 'ops',
      password: OPERATOR_PASSWORD,
      next: '/admin/rollouts/7',
    })
    t.equal(right.status, 303)
    t.equal(right.location, '/admin/rollouts/7', 'back to the page asked for')
    const sidAfter = (await ctx.db.selectFrom('sessions').select(['sid', 'data']).execute()).filter((s) =>
      s.data.includes('operatorId'),
    )
    t.equal(sidAfter.length, 1)
    t.notOk(sidBefore.includes(sidAfter[0]!.sid), 'the session id changed at sign-in')
    t.notOk(
      await ctx.db.selectFrom('sessions').select('sid').where('sid', 'in', sidBefore).executeTakeFirst(),
      'the pre-login session is gone',
    )

    const dash = await agent.get(`${ctx.url}/admin`)
    t.equal(dash.status, 200)
    t.match(dash.text, 'Sign out ops')
    const row = await ctx.db
      .selectFrom('operators')
      .select('last_sign_in_at')
      .where('username', '=', 'ops')
      .executeTakeFirstOrThrow()
    t.equal(row.last_sign_in_at, ctx.clock.now())

    const out = await agent.post(`${ctx.url}/admin/sign-out`, { _csrf: hiddenField(dash.text, '_csrf') })
    t.equal(out.status, 303)
    t.equal((await agent.get(`${ctx.url}/admin`)).status, 303, 'signed out')
  },
)

t.test('sign-in is rate limited', async (t) => {
  const ctx = await startTestApp(t, { env: { RATE_LIMIT_SIGN_IN_PER_MINUTE: '2' } })
  const agent = new Agent()
  const page = await agent.get(`${ctx.url}/admin/sign-in`)
  const csrf = hiddenField(page.text, '_csrf')
  t.equal((await agent.post(`${ctx.url}/admin/sign-in`, { _csrf: csrf, username: 'a', password: 'b' })).status, 401)
  t.equal((await agent.post(`${ctx.url}/admin/sign-in`, { _csrf: csrf, username: 'a', password: 'b' })).status, 401)
  const limited = await agent.post(`${ctx.url}/admin/sign-in`, { _csrf: csrf, username: 'a', password: 'b' })
  t.equal(limited.status, 429)
  t.match(limited.text, 'Too many requests')
})

t.test('CSRF: a POST without or with a wrong token gets 403 and changes nothing', async (t) => {
  const ctx = await startTestApp(t)
  const agent = await signedInOperator(ctx.db, ctx.url, ctx.clock.now())
  const v2 = await ctx.db
    .selectFrom('oauth_apps')
    .select('id')
    .where('key', '=', 'production-v2')
    .executeTakeFirstOrThrow()
  const form = { name: 'Cap table', app_id: String(v2.id), scopes: ['read_user_info'] }
  const none = await agent.post(`${ctx.url}/admin/rollouts`, form)
  t.equal(none.status, 403)
  t.match(none.text, 'This form has expired')
  const wrong = await agent.post(`${ctx.url}/admin/rollouts`, { ...form, _csrf: 'forged-token' })
  t.equal(wrong.status, 403)
  t.equal((await ctx.db.selectFrom('rollouts').selectAll().execute()).length, 0, 'no rollout created')
  t.ok(ctx.logs.some((l) => l.msg === 'CSRF check failed'))

  // Sign-in without the token is refused too (login CSRF).
  await createOperator(ctx.db, 'other', OPERATOR_PASSWORD, ctx.clock.now())
  const fresh = new Agent()
  await fresh.get(`${ctx.url}/admin/sign-in`)
  t.equal(
    (await fresh.post(`${ctx.url}/admin/sign-in`, { username: 'other', password: OPERATOR_PASSWORD })).status,
    403,
  )
})

t.test("an end user's session never reaches /admin", async (t) => {
  const ctx = await startTestApp(t)
  const sid = 'enduser-session-id-0123456789abcdef'
  await ctx.db
    .insertInto('sessions')
    .values({
      sid,
      data: JSON.stringify({
        cookie: { originalMaxAge: 86400000, httpOnly: true, path: '/', sameSite: 'lax' },
        endUserId: 1,
      }),
      expires_at: ctx.clock.now() + 86400000,
    })
    .execute()
  const cookie = signedSessionCookie(sid, ctx.config.sessionSecret)
  for (const path of ['/admin', '/admin/rollouts/1', '/admin/users/1']) {
    const res = await fetch(`${ctx.url}${path}`, { headers: { cookie }, redirect: 'manual' })
    t.equal(res.status, 303, path)
    t.match(res.headers.get('location'), /^\/admin\/sign-in\?next=/)
  }
  const post = await fetch(`${ctx.url}/admin/rollouts`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=x',
    redirect: 'manual',
  })
  t.equal(post.status, 303)
  t.equal((await ctx.db.selectFrom('rollouts').selectAll().execute()).length, 0)
})
