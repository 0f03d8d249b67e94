// The sandbox's API rate limit, at Carta's documented numbers (10 requests/second, 300/minute per
// client; 429 {"message": "API rate limit exceeded"}; RateLimit-* and X-RateLimit-*-Second/-Minute
// on every answer), the control that changes it, and the client's reading of it.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CartaApiError, fetchUser, listIssuers } from '../../src/carta/api.js'
import { loadConfig } from '../../src/config.js'
import { RateLimiter } from '../../src/sandbox/rate-limit.js'
import { startTestApp } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { basic, control, getTokens, tokenRequest } from './helpers.js'

t.test('settings: on by default at Carta numbers, 0 turns a window off, bad values stop start-up', async (t) => {
  const base = { NODE_ENV: 'test', DATA_DIR: mkdtempSync(join(tmpdir(), 'sl-rl-')) }
  t.same(loadConfig(base).sandboxRateLimit, { perSecond: 10, perMinute: 300 })
  t.same(
    loadConfig({ ...base, SANDBOX_RATE_LIMIT_PER_SECOND: '0', SANDBOX_RATE_LIMIT_PER_MINUTE: '0' }).sandboxRateLimit,
    { perSecond: 0, perMinute: 0 },
  )
  for (const [name, value] of [
    ['SANDBOX_RATE_LIMIT_PER_SECOND', 'ten'],
    ['SANDBOX_RATE_LIMIT_PER_MINUTE', '-1'],
    ['SANDBOX_RATE_LIMIT_PER_MINUTE', '100001'],
  ] as const) {
    t.throws(() => loadConfig({ ...base, [name]: value }), { name: 'ConfigError', variable: name }, `${name}=${value}`)
  }
})

t.test('RateLimiter: fixed windows per key, refused requests do not count, headers as Carta documents', async (t) => {
  let now = 1_000_000
  const limiter = new RateLimiter({ perSecond: 2, perMinute: 3 }, () => now)
  const a1 = limiter.take('a')
  t.same(a1, {
    allowed: true,
    headers: {
      'X-RateLimit-Limit-Second': '2',
      'X-RateLimit-Remaining-Second': '1',
      'X-RateLimit-Limit-Minute': '3',
      'X-RateLimit-Remaining-Minute': '2',
      'RateLimit-Limit': '2',
      'RateLimit-Remaining': '1',
      'RateLimit-Reset': '1',
    },
  })
  t.equal(limiter.take('a').allowed, true)
  const a3 = limiter.take('a')
  t.equal(a3.allowed, false, 'third in one second')
  t.equal(a3.retryAfterSeconds, 1)
  t.equal(a3.headers['RateLimit-Remaining'], '0')
  t.equal(limiter.take('b').allowed, true, 'another key has its own budget')
  now += 1000
  const a4 = limiter.take('a')
  t.equal(a4.allowed, true, 'a new second')
  t.equal(a4.headers['X-RateLimit-Remaining-Minute'], '0', 'the refused one did not count')
  t.equal(a4.headers['RateLimit-Limit'], '3', 'RateLimit-* follow the tighter window')
  now += 500
  const a5 = limiter.take('a')
  t.equal(a5.allowed, false, 'the minute is spent')
  t.equal(a5.retryAfterSeconds, 59, 'wait until the minute window ends')
  t.equal(a5.headers['RateLimit-Reset'], '59')
  now += 59_000
  t.equal(limiter.take('a').allowed, true, 'a new minute')
  limiter.configure({ perSecond: 0, perMinute: 0 })
  t.same(limiter.take('a'), { allowed: true, headers: {} }, 'off: no headers')
})

t.test('over HTTP: per client id, 429 with the documented body and headers, counted in stats', async (t) => {
  const app = await startTestApp(t, {
    env: { SANDBOX_RATE_LIMIT_PER_SECOND: '10', SANDBOX_RATE_LIMIT_PER_MINUTE: '300' },
  })
  const base = `${app.url}/sandbox`
  const redirectUri = `${app.url}/carta/callback`
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  t.same((await control(base, 'stats')).json.rateLimit, { perSecond: 10, perMinute: 300 }, 'Carta numbers')
  const tokens = await getTokens(new Agent(), base, v2, redirectUri)
  const other = await getTokens(new Agent(), base, v1, redirectUri)
  const call = (token: string) =>
    fetch(`${base}/v1alpha1/user`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
      status: r.status,
      headers: r.headers,
      body: await r.text(),
    }))

  const ok = await call(tokens.access_token)
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('ratelimit-limit'), '10', 'headers on a success too')
  t.equal(ok.headers.get('ratelimit-remaining'), '9')
  t.equal(ok.headers.get('x-ratelimit-limit-minute'), '300')
  t.equal(ok.headers.get('x-ratelimit-remaining-minute'), '299')

  // Eleven more at once: the burst allows nine more this second.
  const burst = await Promise.all(Array.from({ length: 11 }, () => call(tokens.access_token)))
  const refused = burst.filter((r) => r.status === 429)
  t.equal(burst.filter((r) => r.status === 200).length, 9)
  t.equal(refused.length, 2)
  const limited = refused[0]!
  t.same(JSON.parse(limited.body), { message: 'API rate limit exceeded' })
  t.equal(limited.headers.get('ratelimit-remaining'), '0')
  t.equal(limited.headers.get('ratelimit-reset'), '1')
  t.equal(limited.headers.get('retry-after'), '1')
  t.equal(limited.headers.get('x-ratelimit-remaining-second'), '0')

  t.equal((await call(other.access_token)).status, 200, 'another client id is not affected')
  const form = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }
  t.equal(
    (await tokenRequest(base, form, basic(v2.clientId, v2.clientSecret))).status,
    200,
    'OAuth endpoints are not limited',
  )
  const stats = await control(base, 'stats')
  t.equal(stats.json.rateLimited, 2)
  t.ok(
    app.logs.some((l) => l.msg === 'sandbox: API rate limit exceeded'),
    'logged',
  )
  t.notOk(JSON.stringify(app.logs).includes(tokens.access_token), 'no token in the log')
})

t.test('the rate-limit control, and the client reading a 429 as rate_limited with the wait', async (t) => {
  const app = await startTestApp(t)
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const tokens = await getTokens(new Agent(), base, v2, `${app.url}/carta/callback`)
  const set = await control(base, 'rate-limit', { perSecond: 0, perMinute: 2 })
  t.equal(set.status, 200)
  t.same(set.json, { perSecond: 0, perMinute: 2 })
  await fetchUser(v2, tokens.access_token)
  t.same(await listIssuers(v2, tokens.access_token), [{ id: 'iss_lumen', legalName: 'Lumen Robotics, Inc.' }])
  let err: unknown
  try {
    await fetchUser(v2, tokens.access_token)
  } catch (e) {
    err = e
  }
  t.type(err, CartaApiError)
  const e = err as CartaApiError
  t.equal(e.kind, 'rate_limited')
  t.equal(e.details.status, 429)
  t.ok(
    e.details.retryAfterMs! > 50_000 && e.details.retryAfterMs! <= 60_000,
    `waits for the minute (${e.details.retryAfterMs} ms)`,
  )

  for (const bad of [{ perMinute: -1 }, { perSecond: 'ten' }, { perSecond: 1.5 }, { perMinute: 100_001 }]) {
    t.equal((await control(base, 'rate-limit', bad)).status, 400, JSON.stringify(bad))
  }
  t.same((await control(base, 'stats')).json.rateLimit, { perSecond: 0, perMinute: 2 }, 'bad values changed nothing')
  t.equal((await control(base, 'rate-limit', { perMinute: 0 })).status, 200)
  t.equal((await fetchUser(v2, tokens.access_token)).id, 'cu_1001', 'off again')
  await control(base, 'rate-limit', { perMinute: 1 })
  await control(base, 'reset', {})
  t.same(
    (await control(base, 'stats')).json.rateLimit,
    { perSecond: 1000, perMinute: 100_000 },
    'reset restores the configured limit',
  )
})
