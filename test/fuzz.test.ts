// Keep it fixed (README, "Security"): a seeded fuzz run over the callback, connect, link pages, the
// sandbox Carta and the operator pages while signed in. Parameters and path segments are drawn
// from a list of hostile values (NUL and other control characters, invalid percent-encodings,
// non-Latin-1 text, ids past PostgreSQL's integer, huge strings, CRLF); forms go with and without
// a valid CSRF token. No answer may be a 5xx except the documented 502/504 for Carta failures on
// the callback, no error log line may appear, and the server must still answer at the end.
// FUZZ_SEED and FUZZ_REQUESTS reproduce or widen a run; both engines (TEST_DATABASE_URL).
import t from 'tap'
import { issueLink, linkContextFrom } from '../src/links/links.js'
import { startTestApp } from './helpers/app.js'
import { type Agent, hiddenField } from './helpers/browser-agent.js'
import { connectUser, signInOperator } from './helpers/connect.js'
import { createMember, createRollout } from './links/fixtures.js'

const SEED = Number(process.env.FUZZ_SEED ?? 20261130)
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2000)
const IN_FLIGHT = 6

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with its seed. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  return { next, int, pick }
}

// Already percent-encoded where it matters: they go into URLs and form bodies as they are.
const HOSTILE = [
  '',
  '%00',
  'a%00b',
  '%01',
  '%0A',
  '%0D%0ASet-Cookie:%20x=1',
  '%1F',
  '%7F',
  '%FF',
  '%E6%BC%A2',
  '%F0%9F%92%A5',
  '%C0%AF',
  '%E2%80%A8',
  '%',
  '%G1',
  '%E0%A4%A',
  '0',
  '-1',
  '1',
  '2',
  '2147483647',
  '2147483648',
  '99999999999999999999999',
  '1e3',
  '0x10',
  'NaN',
  'null',
  'true',
  '[]',
  '{}',
  '..%2F..%2Fetc%2Fpasswd',
  '%2Fadmin%2F%00',
  '%2F%2Fevil.example',
  'https%3A%2F%2Fevil.example%2F',
  '%3Cscript%3Ealert(1)%3C%2Fscript%3E',
  "'%20OR%201=1--",
  '%22',
  'read_user_info',
  'read_user_info%20read_issuer_info',
  'production-v2',
  'playground',
  'cu_1001',
  'a'.repeat(600),
  'b'.repeat(5000),
] as const

t.test('fuzzed requests: no 5xx, no error log line, the server keeps answering', async (t) => {
  const app = await startTestApp(t)
  const rand = prng(SEED)
  const now = app.clock.now()

  // Something real to aim at: a user, a rollout, a link, an operator, a started flow.
  const rollout = await createRollout(app.db, { now })
  const member = await createMember(
    app.app.deps,
    { cartaUserId: 'c-fuzz', email: 'fuzz@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
    now,
  )
  const { url: link } = await issueLink(app.db, linkContextFrom(app.config, app.clock), {
    rolloutId: rollout.id,
    userId: member,
    issuedBy: 'test',
  })
  const linkToken = link.split('/reauthorize/')[1]!
  await connectUser(app, { cartaUser: 'cu_1002' })
  const ops: Agent = await signInOperator(app)
  const csrf = hiddenField((await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)).text, '_csrf')
  const connectStart = await ops.get(`${app.url}/carta/connect?app=production-v2`)
  const realState = new URL(connectStart.location!).searchParams.get('state')!

  const h = () => rand.pick(HOSTILE)
  const id = () => rand.pick([String(rollout.id), String(member), '1', h()])
  const query = (names: readonly string[]) =>
    names
      .filter(() => rand.next() < 0.7)
      .map((n) => `${n}=${h()}`)
      .join('&')
  const tamper = (token: string) => {
    const i = rand.int(token.length)
    return `${token.slice(0, i)}${rand.pick(['A', '_', '-', '%00', '', 'zz'])}${token.slice(i + 1)}`
  }

  type Req = { method: 'GET' | 'POST'; path: string; form?: Record<string, string>; signedIn: boolean }
  const generators: Array<() => Req> = [
    () => ({
      method: 'GET',
      path: `/carta/callback?${query(['state', 'code', 'error', 'error_description', 'iss'])}${rand.next() < 0.3 ? `&state=${realState}` : ''}`,
      signedIn: rand.next() < 0.5,
    }),
    () => ({ method: 'GET', path: `/carta/connect?${query(['app', 'scope', 'next'])}`, signedIn: rand.next() < 0.5 }),
    () => ({ method: 'GET', path: `/reauthorize/${rand.next() < 0.5 ? tamper(linkToken) : h()}`, signedIn: false }),
    () => ({
      method: 'POST',
      path: `/reauthorize/${rand.next() < 0.3 ? linkToken : tamper(linkToken)}`,
      form: { _csrf: rand.next() < 0.5 ? csrf : h() },
      signedIn: rand.next() < 0.5,
    }),
    () => ({
      method: 'GET',
      path: `/sandbox/o/authorize/?${query(['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'code_challenge', 'code_challenge_method'])}`,
      signedIn: false,
    }),
    () => ({
      method: 'POST',
      path: rand.pick([
        '/sandbox/o/access_token/',
        '/sandbox/o/revoke_token/',
        '/sandbox/login',
        '/sandbox/o/authorize/',
      ]),
      form: Object.fromEntries(
        ['grant_type', 'code', 'refresh_token', 'client_id', 'client_secret', 'token', 'user_id', 'next', 'scope']
          .filter(() => rand.next() < 0.5)
          .map((k) => [k, h()]),
      ),
      signedIn: false,
    }),
    () => ({
      method: 'GET',
      path: rand.pick([
        `/sandbox/login?next=${h()}`,
        `/sandbox/v1alpha1/user`,
        `/sandbox/v1alpha1/corporations/${h()}`,
        `/sandbox/${h()}`,
      ]),
      signedIn: false,
    }),
    () => ({
      method: 'GET',
      path: rand.pick([
        `/admin/rollouts/${id()}?${query(['scope', 'app', 'q', 'sort', 'after', 'link'])}`,
        `/admin/rollouts/${id()}/links/${id()}?${query(['issued', 'reused'])}`,
        `/admin/rollouts/${id()}/links.csv?${query(['scope', 'app', 'q'])}`,
        `/admin/users/${id()}`,
        `/admin/users/${id()}/revoke`,
        `/admin/apps/${id()}/retire`,
        `/admin/audit?${query(['type', 'user', 'app', 'rollout', 'after', 'before', 'from', 'to'])}`,
        `/admin/audit.csv?${query(['type', 'user', 'app', 'rollout', 'from', 'to'])}`,
        `/admin/reports?${query(['run'])}`,
        `/admin/reports/runs/${id()}/${h()}`,
        `/admin/sign-in?next=${h()}`,
        `/admin?${query(['app'])}`,
        `/admin/${h()}`,
      ]),
      signedIn: rand.next() < 0.9,
    }),
    () => {
      const path = rand.pick([
        '/admin/rollouts',
        `/admin/rollouts/${id()}/archive`,
        `/admin/rollouts/${id()}/links`,
        `/admin/rollouts/${id()}/links/bulk`,
        `/admin/rollouts/${id()}/links.csv`,
        `/admin/users/${id()}/revoke`,
        `/admin/reports/run`,
        `/admin/sign-in`,
      ])
      const form: Record<string, string> = { _csrf: rand.next() < 0.7 ? csrf : h() }
      for (const k of ['name', 'app', 'app_id', 'scopes', 'scope', 'user_id', 'q', 'return_to', 'next', 'username'])
        if (rand.next() < 0.4) form[k] = h()
      return { method: 'POST', path, form, signedIn: rand.next() < 0.9 }
    },
  ]

  const failures: string[] = []
  const statuses = new Map<number, number>()
  let sent = 0
  const worker = async () => {
    while (sent < REQUESTS) {
      sent++
      const req = rand.pick(generators)()
      const url = `${app.url}${req.path}`
      const init: RequestInit = { method: req.method }
      if (req.form) {
        // Raw: the hostile values are percent-encoded already.
        init.body = Object.entries(req.form)
          .map(([k, v]) => `${k}=${v}`)
          .join('&')
        init.headers = { 'content-type': 'application/x-www-form-urlencoded' }
      }
      let status: number
      try {
        status = req.signedIn
          ? (await ops.request(url, init)).status
          : await fetch(url, { ...init, redirect: 'manual' }).then(async (r) => {
              await r.arrayBuffer()
              return r.status
            })
      } catch (err) {
        status = -1
        failures.push(`${req.method} ${req.path.slice(0, 200)} → no answer: ${(err as Error).message}`)
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      const cartaFailure = (status === 502 || status === 504) && req.path.startsWith('/carta/callback')
      if (status >= 500 && !cartaFailure) failures.push(`${req.method} ${req.path.slice(0, 200)} → ${status}`)
      // The operator may sign themselves out (or a fuzzed sign-in may replace the session): sign in again.
      if (req.path.startsWith('/admin/sign-in') && req.method === 'POST') {
        const page = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
        if (page.status !== 200) failures.push(`operator session lost after ${req.path}`)
      }
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))

  t.comment(`seed ${SEED}, ${REQUESTS} requests: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.same(failures.slice(0, 20), [], 'no 5xx (but documented 502/504 from Carta) and every request answered')
  const errors = app.logs.filter((l) => Number(l.level) >= 50)
  t.same(
    errors.slice(0, 10).map((l) => `${l.msg} ${(l.err as { message?: string } | undefined)?.message ?? ''}`),
    [],
    'no error log line',
  )
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'the server is alive and answers')
})
