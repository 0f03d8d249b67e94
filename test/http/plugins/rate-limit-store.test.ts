// Rate limits are counted in the database: two app instances on one database (one PostgreSQL
// schema with TEST_DATABASE_URL, else one SQLite file) share the limit instead of allowing it
// once each. A window ends after its time and counting starts again.
import t from 'tap'
import { buildApp } from '../../../src/app.js'
import type { ManualClock } from '../../../src/clock.js'
import { openDatabase } from '../../../src/db/index.js'
import { freePort, startTestApp } from '../../helpers/app.js'

t.test('two instances on one database share the OAuth rate limit', async (t) => {
  const a = await startTestApp(t, { env: { RATE_LIMIT_OAUTH_PER_MINUTE: '5' } })
  const port = await freePort()
  const dbB = await openDatabase(a.config.database)
  const configB = { ...a.config, port, publicUrl: `http://127.0.0.1:${port}` }
  const b = await buildApp({ config: configB, db: dbB, clock: a.clock, backgroundJobs: false })
  await b.listen({ host: '127.0.0.1', port })
  t.teardown(async () => {
    await b.close()
    await dbB.destroy()
  })

  const statuses: number[] = []
  for (let i = 0; i < 8; i++) {
    const base = i % 2 === 0 ? a.url : configB.publicUrl
    const res = await fetch(`${base}/carta/connect?app=production-v2`, { redirect: 'manual' })
    statuses.push(res.status)
    if (i === 0) t.equal(res.headers.get('x-ratelimit-remaining'), '4', 'the first hit leaves 4')
  }
  t.same(statuses, [303, 303, 303, 303, 303, 429, 429, 429], 'five in all across both instances, then 429')

  ;(a.clock as ManualClock).advance(61_000)
  const again = await fetch(`${configB.publicUrl}/carta/connect?app=production-v2`, { redirect: 'manual' })
  t.equal(again.status, 303, 'a new window starts after a minute')
  const rows = await a.db.selectFrom('rate_limit_hits').selectAll().execute()
  t.equal(rows.length, 1, 'one counter row for the route and client')
  t.match(rows[0]!.key, /^GET \/carta\/connect\|/)
})
