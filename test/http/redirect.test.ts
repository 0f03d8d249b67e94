// Redirect targets: the one check (src/http/redirect.ts) and every parameter that reaches a
// Location header through it — the admin sign-in `next` (GET, with and without an operator
// session, and in a valid sign-in POST), the feature page's return path kept in the OAuth state,
// and the sandbox's sign-in `next` (GET with and without its cookie, POST, sign-out). Every control
// character and some text a Location header cannot carry: the server answers each one (a page or
// a safe local redirect, never 5xx), and still answers /healthz afterwards.
import t, { type Test } from 'tap'
import { localRedirect } from '../../src/http/redirect.js'
import { startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { connectUser } from '../helpers/connect.js'
import { OPERATOR_PASSWORD, signedInOperator } from '../helpers/ledger.js'

const CONTROLS = [...Array.from({ length: 0x20 }, (_, i) => i), 0x7f].map((c) => String.fromCharCode(c))
const NON_ASCII = ['漢', 'é', '😀', '\u00a0', '\u2028']
const AWKWARD = [...CONTROLS, ...NON_ASCII]

/** A test name without raw control or line-separator characters (TAP is line-based). */
const printable = (value: unknown) =>
  typeof value === 'string'
    ? value.slice(0, 60).replace(/[^\x20-\x7e]/gu, (c) => `U+${c.codePointAt(0)!.toString(16).padStart(4, '0')}`)
    : String(value)

/** A Location a browser reads as this host's path, in characters a header carries. */
function assertSafeLocation(t: Test, location: string | null, label: string) {
  if (location === null) return
  t.match(location, /^\/(?![/\\])[\x21-\x7e]*$/, `${label}: local, printable ASCII`)
}

t.test('localRedirect keeps local, plain paths inside the allowed prefix', async (t) => {
  const admin = { within: '/admin', fallback: '/admin' }
  t.equal(localRedirect('/admin/rollouts/3?scope=x#lacking', admin), '/admin/rollouts/3?scope=x#lacking')
  t.equal(localRedirect('/admin', admin), '/admin')
  t.equal(localRedirect('/admin?x=%E6%BC%A2', admin), '/admin?x=%E6%BC%A2', 'percent-encoded text is fine')
  for (const bad of [
    'https://evil.example/admin',
    '//evil.example/admin',
    '/\\evil.example',
    '/admin\\@evil',
    '/administrator',
    '/',
    '',
    undefined,
    42,
    '/admin/../sandbox',
    '/admin/%2e%2e/sandbox',
    '/admin/./x',
    'admin',
    '/admin x',
    `/admin/${'a'.repeat(2100)}`,
    ...AWKWARD.map((c) => `/admin/${c}`),
    ...AWKWARD.map((c) => `/admin?x=${c}`),
  ]) {
    t.equal(localRedirect(bad, admin), '/admin', printable(bad))
  }
  t.equal(localRedirect('/features/x', { within: '/features/', fallback: '/f' }), '/features/x')
  t.equal(localRedirect('/featuresx', { within: '/features/', fallback: '/f' }), '/f')
  t.equal(localRedirect('/anything/local', { fallback: '/' }), '/anything/local')
})

t.test('every awkward character through every redirect parameter: answered, never 5xx, server alive', async (t) => {
  const ctx = await startTestApp(t)
  const { url, db } = ctx
  const statuses: number[] = []
  const seen = (label: string, res: { status: number; location: string | null }) => {
    statuses.push(res.status)
    t.ok(res.status < 500, `${label}: ${res.status}`)
    assertSafeLocation(t, res.location, label)
  }
  const operator = await signedInOperator(db, url, ctx.clock.now())
  const visitor = new Agent()
  const endUser = (await connectUser(ctx, { appKey: 'production-v1' })).agent
  const sandboxUser = new Agent()
  const signInPage = await sandboxUser.get(`${url}/sandbox/login`)
  t.equal(signInPage.status, 200)
  const sandboxSignedIn = await sandboxUser.post(`${url}/sandbox/login`, { user_id: 'cu_1001' })
  t.equal(sandboxSignedIn.status, 303)

  for (const c of AWKWARD) {
    const label = `U+${c.codePointAt(0)!.toString(16).padStart(4, '0')}`
    const raw = `/admin/${c}`
    const next = encodeURIComponent(raw)
    // Admin sign-in: an operator is sent on at once; a visitor gets the form with a safe `next`.
    seen(`${label} admin GET, operator`, await operator.get(`${url}/admin/sign-in?next=${next}`))
    const form = await visitor.get(`${url}/admin/sign-in?next=${next}`)
    seen(`${label} admin GET, visitor`, form)
    t.equal(form.status, 200)
    // Surrounding whitespace is trimmed from query values; what is left must be a plain dashboard path.
    t.match(hiddenField(form.text, 'next'), /^\/admin(\/)?$/, `${label}: the form carries a plain dashboard path`)
    // A valid sign-in POST with the awkward `next`.
    const fresh = new Agent()
    const page = await fresh.get(`${url}/admin/sign-in`)
    seen(
      `${label} admin POST`,
      await fresh.post(`${url}/admin/sign-in`, {
        _csrf: hiddenField(page.text, '_csrf'),
        username: 'ops',
        password: OPERATOR_PASSWORD,
        next: raw,
      }),
    )
    // In the query part of the target, as the finding had it (next=/admin?x=漢).
    const inQuery = encodeURIComponent(`/admin?x=${c}`)
    seen(`${label} admin GET in query, operator`, await operator.get(`${url}/admin/sign-in?next=${inQuery}`))

    // The feature page's return path: kept in the OAuth state, redirected to after the callback.
    const gate = await endUser.get(`${url}/features/issuers/iss_lumen/cap-table`)
    const started = await endUser.post(`${url}/features/cap-table/reauthorize`, {
      _csrf: hiddenField(gate.text, '_csrf'),
      returnTo: `/features/issuers/${c}`,
    })
    seen(`${label} feature returnTo`, { status: started.status, location: null })
    t.equal(started.status, 303, `${label}: the flow starts`)

    // The sandbox's sign-in `next`, with and without its cookie, and its sign-out.
    const sandboxNext = encodeURIComponent(`/sandbox/${c}`)
    seen(`${label} sandbox GET, signed in`, await sandboxUser.get(`${url}/sandbox/login?next=${sandboxNext}`))
    seen(`${label} sandbox GET, visitor`, await new Agent().get(`${url}/sandbox/login?next=${sandboxNext}`))
    seen(
      `${label} sandbox POST`,
      await sandboxUser.post(`${url}/sandbox/login`, { user_id: 'cu_1001', next: `/sandbox/${c}` }),
    )
    seen(`${label} sandbox sign-out`, await new Agent().post(`${url}/sandbox/logout`, { next: `/sandbox/${c}` }))
  }

  const states = await db.selectFrom('oauth_states').select('return_to').execute()
  t.ok(states.length >= AWKWARD.length, 'a state per started flow')
  for (const { return_to } of states)
    if (return_to !== null) t.match(return_to, /^\/(?![/\\])[\x21-\x7e]*$/, `stored return path ${return_to}`)
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'the server still answers')
  t.notOk(
    ctx.logs.some((l) => l.level === 50),
    'no error log line',
  )
  t.ok(statuses.length > 0)
})

t.test('a header Node would refuse becomes a 500 page and a log line, with or without a session', async (t) => {
  const ctx = await startTestApp(t, {
    // A route that sets a header value HTTP cannot carry, as an unchecked redirect once did.
    extend: (app) => app.get('/test/bad-header', async (_request, reply) => reply.redirect('/admin/\u0000漢', 303)),
  })
  const operator = await signedInOperator(ctx.db, ctx.url, ctx.clock.now())
  for (const [who, agent] of [
    ['operator', operator],
    ['visitor', new Agent()],
  ] as const) {
    const res = await agent.get(`${ctx.url}/test/bad-header`)
    t.equal(res.status, 500, `${who}: a 500 page`)
    t.equal(res.location, null, `${who}: no Location header`)
    t.match(res.text, /Something went wrong/)
  }
  t.equal(
    ctx.logs.filter((l) => l.level === 50 && l.msg === 'refused a response header Node cannot send').length,
    2,
    'logged each time',
  )
  t.equal((await fetch(`${ctx.url}/healthz`)).status, 200, 'the server still answers')
})
