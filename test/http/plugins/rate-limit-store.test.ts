// Rate limits are counted in the database: two app instances on one database (one PostgreSQL
// schema with TEST_DATABASE_URL, else one SQLite file) share the limit instead of allowing it
// once each. A window ends after its time and counting starts again.
import t, { type Test } from 'tap'
import { createApiKey } from '../../../src/api/keys.js'
import { buildApp } from '../../../src/app.js'
import type { ManualClock } from '../../../src/clock.js'
import { openDatabase } from '../../../src/db/index.js'
import { databaseRateLimitStore } from '../../../src/http/plugins/rate-limit-store.js'
import { freePort, startTestApp, type TestApp } from '../../helpers/app.js'

t.test('two instances on one database share the OAuth rate limit', async (t) => {
  const a = await startTestApp(t, { env: { RATE_LIMIT_OAUTH_PER_MINUTE: '5' } })
  const urlB = await secondInstance(t, a)

  const statuses: number[] = []
  for (let i = 0; i < 8; i++) {
    const base = i % 2 === 0 ? a.url : urlB
    const res = await fetch(`${base}/carta/connect?app=production-v2`, { redirect: 'manual' })
    statuses.push(res.status)
    if (i === 0) t.equal(res.headers.get('x-ratelimit-remaining'), '4', 'the first hit leaves 4')
  }
  t.same(statuses, [303, 303, 303, 303, 303, 429, 429, 429], 'five in all across both instances, then 429')

  ;(a.clock as ManualClock).advance(61_000)
  const again = await fetch(`${urlB}/carta/connect?app=production-v2`, { redirect: 'manual' })
  t.equal(again.status, 303, 'a new window starts after a minute')
  const rows = await a.db.selectFrom('rate_limit_hits').selectAll().execute()
  t.equal(rows.length, 1, 'one counter row for the route and client')
  t.match(rows[0]!.key, /^GET \/carta\/connect\|/)
})

t.test('two instances share the per-key API limit: concurrent requests on both, the limit in total', async (t) => {
  const a = await startTestApp(t, { env: { API_RATE_LIMIT_PER_MINUTE: '12' } })
  const urlB = await secondInstance(t, a)
  const { key } = await createApiKey(a.db, { name: 'shared', permissions: ['read'], actor: 'test' }, a.clock.now())
  const { key: other } = await createApiKey(
    a.db,
    { name: 'other', permissions: ['read'], actor: 'test' },
    a.clock.now(),
  )
  const call = (base: string, k: string) =>
    fetch(`${base}/api/v1/users/nobody`, { headers: { authorization: `Bearer ${k}` } })

  // 40 requests at once, half on each instance.
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call(i % 2 ? urlB : a.url, key)))
  const limited = answers.filter((r) => r.status === 429)
  t.equal(answers.length - limited.length, 12, 'twelve answered in all (404: no such user), not twelve per instance')
  t.equal(limited.length, 28, 'the rest refused')
  for (const r of limited) {
    t.ok(Number(r.headers.get('retry-after')) > 0, 'Retry-After on every 429')
    t.match(r.headers.get('content-type'), /^application\/problem\+json/)
  }
  t.equal((await call(a.url, other)).status, 404, 'another key has its own budget')
  ;(a.clock as ManualClock).advance(61_000)
  t.equal((await call(urlB, key)).status, 404, 'a new window after a minute')
})

t.test('a large limit is claimed in slices: fewer writes than hits, never more admitted than the limit', async (t) => {
  const app = await startTestApp(t)
  let writes = 0
  const counted = app.db.withPlugin({
    transformQuery: (args) => {
      writes++
      return args.node
    },
    transformResult: async (args) => args.result,
  })
  // Two instances' stores on one database, 1,500 hits at once against a limit of 1,200.
  const stores = [databaseRateLimitStore(counted, app.clock), databaseRateLimitStore(counted, app.clock)].map(
    (Store) => new Store({ timeWindow: 60_000 }),
  )
  const hit = (i: number) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) =>
      stores[i % 2]!.incr('api-key:1', (err, res) => (err ? reject(err) : resolve(res!)), 60_000, 1200),
    )
  const results = await Promise.all(Array.from({ length: 1500 }, (_, i) => hit(i)))
  const admitted = results.filter((r) => r.current <= 1200)
  t.ok(admitted.length <= 1200, `never more than the limit (${admitted.length})`)
  t.ok(admitted.length >= 1150, 'and close to it (slices left unspent are small)')
  t.equal(new Set(admitted.map((r) => r.current)).size, admitted.length, 'each admitted hit its own position')
  t.ok(writes < 100, `${writes} upserts for 1,500 hits`)
  t.ok(
    results.filter((r) => r.current > 1200).every((r) => r.ttl > 0 && r.ttl <= 60_000),
    'refused hits know when the window ends',
  )
  // A new window: the slices start over.
  ;(app.clock as ManualClock).advance(60_001)
  t.equal((await hit(0)).current <= 1200, true, 'admitted again in the next window')
})

/** Instance B (its URL): the same configuration and clock as `a`, its own connection and port. */
async function secondInstance(t: Test, a: TestApp): Promise<string> {
  const port = await freePort()
  const dbB = await openDatabase(a.config.database)
  const configB = { ...a.config, port, publicUrl: `http://127.0.0.1:${port}` }
  const b = await buildApp({ config: configB, db: dbB, clock: a.clock, backgroundJobs: false })
  await b.listen({ host: '127.0.0.1', port })
  t.teardown(async () => {
    await b.close()
    await dbB.destroy()
  })
  return configB.publicUrl
}
