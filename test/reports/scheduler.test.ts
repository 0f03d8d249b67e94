// The schedule: slots computed by croner in the configured time zone, fired deterministically
// through a ManualClock, one run per slot across two app instances on one database, failures
// that do not stop later slots, and the real croner job firing in real time.
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { ManualClock, systemClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { nextSlot } from '../../src/reports/scheduler.js'
import { startTestApp } from '../helpers/app.js'
import { seedCoverage } from './fixtures.js'

const iso = (s: string) => Date.parse(s)

t.test('nextSlot follows the cron expression in the configured time zone', async (t) => {
  t.equal(nextSlot('0 6 * * *', 'UTC', iso('2025-01-15T05:59:59Z')), iso('2025-01-15T06:00:00Z'))
  t.equal(nextSlot('0 6 * * *', 'UTC', iso('2025-01-15T06:00:00Z')), iso('2025-01-16T06:00:00Z'), 'strictly after')
  // 06:00 in New York is 11:00 UTC in winter and 10:00 UTC in summer.
  t.equal(nextSlot('0 6 * * *', 'America/New_York', iso('2025-01-15T00:00:00Z')), iso('2025-01-15T11:00:00Z'))
  t.equal(nextSlot('0 6 * * *', 'America/New_York', iso('2025-07-15T00:00:00Z')), iso('2025-07-15T10:00:00Z'))
  t.equal(nextSlot('*/15 * * * *', 'UTC', iso('2025-01-15T06:01:00Z')), iso('2025-01-15T06:15:00Z'))
})

t.test('a slot fires when the clock reaches it, keyed by the scheduled time, once', async (t) => {
  const clock = new ManualClock(iso('2025-01-15T05:59:00Z'))
  const app = await startTestApp(t, { clock, env: { REPORT_CRON: '0 6 * * *', REPORT_TIMEZONE: 'UTC' } })
  await seedCoverage(app.db, clock.now())
  const scheduler = app.app.jobs.get('reports').scheduler
  t.equal(scheduler.pendingSlot, iso('2025-01-15T06:00:00Z'))
  t.equal(await scheduler.tick(), null, 'not due yet')
  t.equal((await app.db.selectFrom('report_runs').selectAll().execute()).length, 0)

  clock.set(iso('2025-01-15T06:00:02.345Z'))
  const outcome = await scheduler.tick()
  t.equal(outcome?.status, 'succeeded')
  const runs = await app.db.selectFrom('report_runs').selectAll().execute()
  t.equal(runs.length, 1)
  t.match(runs[0], {
    slot_key: '2025-01-15T06:00:00.000Z',
    trigger: 'schedule',
    status: 'succeeded',
    started_at: iso('2025-01-15T06:00:02.345Z'),
  })
  t.equal(await scheduler.tick(), null, 'the same slot does not run twice')
  t.equal(scheduler.pendingSlot, iso('2025-01-16T06:00:00Z'), 'waits for the next slot')

  // Down for three days: only the latest missed slot runs (no back-fill).
  clock.set(iso('2025-01-19T07:30:00Z'))
  const late = await scheduler.tick()
  t.equal(late?.status, 'succeeded')
  const keys = (await app.db.selectFrom('report_runs').select('slot_key').orderBy('id').execute()).map(
    (r) => r.slot_key,
  )
  t.same(keys, ['2025-01-15T06:00:00.000Z', '2025-01-19T06:00:00.000Z'])
  t.equal(scheduler.pendingSlot, iso('2025-01-20T06:00:00Z'))
})

t.test('a failed scheduled run is recorded and logged, and the next slot still runs', async (t) => {
  const clock = new ManualClock(iso('2025-01-15T05:00:00Z'))
  const app = await startTestApp(t, { clock, env: { REPORT_CRON: '0 6 * * *' } })
  await seedCoverage(app.db, clock.now())
  const goodDir = app.config.reports.dir
  const blocker = join(app.dataDir, 'blocker')
  writeFileSync(blocker, '')
  app.config.reports.dir = join(blocker, 'reports')

  clock.set(iso('2025-01-15T06:00:01Z'))
  const failed = await app.app.jobs.get('reports').scheduler.tick()
  t.equal(failed?.status, 'failed')
  t.match(await app.db.selectFrom('report_runs').selectAll().executeTakeFirst(), {
    status: 'failed',
    error: /blocker\/reports/,
  })
  t.ok(
    app.logs.some((l) => l.level === 50 && l.msg === 'report run failed'),
    'error log line',
  )

  app.config.reports.dir = goodDir
  clock.set(iso('2025-01-16T06:00:01Z'))
  const next = await app.app.jobs.get('reports').scheduler.tick()
  t.equal(next?.status, 'succeeded', 'the schedule keeps going')
  t.equal(readdirSync(goodDir).length, 3)
})

t.test('two app instances on one database firing the same slot: one run, one set of files', async (t) => {
  const clock = new ManualClock(iso('2025-01-15T05:59:00Z'))
  const first = await startTestApp(t, { clock, env: { REPORT_CRON: '0 6 * * *' } })
  await seedCoverage(first.db, clock.now())
  // A second instance: its own connection to the same database file, same configuration.
  const secondDb = await openDatabase(first.config.database)
  const secondLogs: Array<Record<string, unknown>> = []
  const logStream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) secondLogs.push(JSON.parse(line))
      done()
    },
  })
  const second = await buildApp({ config: first.config, db: secondDb, clock, backgroundJobs: false, logStream })
  await second.ready()
  t.teardown(async () => {
    await second.close()
    await secondDb.destroy()
  })

  clock.set(iso('2025-01-15T06:00:00.500Z'))
  const outcomes = await Promise.all([
    first.app.jobs.get('reports').scheduler.tick(),
    second.jobs.get('reports').scheduler.tick(),
  ])
  t.same(outcomes.map((o) => o?.status).sort(), ['skipped', 'succeeded'])
  const runs = await first.db.selectFrom('report_runs').selectAll().execute()
  t.equal(runs.length, 1, 'one run row')
  t.equal(runs[0]!.slot_key, '2025-01-15T06:00:00.000Z')
  t.equal(
    (await first.db.selectFrom('coverage_snapshots').selectAll().execute()).length,
    2,
    'one snapshot per active rollout',
  )
  const files = readdirSync(first.config.reports.dir)
  t.equal(files.length, 3, 'one set of files')
  t.ok(files.every((f) => f.endsWith(`-${runs[0]!.id}.${f.split('.').pop()}`)))
  const skipLines = [...first.logs, ...secondLogs].filter((l) => String(l.msg).includes('slot already taken'))
  t.equal(skipLines.length, 1, 'the loser logs "slot already taken"')
})

t.test('the croner job really fires on a short cron in real time, and stops on close', async (t) => {
  const app = await startTestApp(t, { clock: systemClock, backgroundJobs: true, env: { REPORT_CRON: '* * * * * *' } })
  await seedCoverage(app.db, Date.now())
  const deadline = Date.now() + 6000
  let runs: Array<{ slot_key: string; trigger: string; status: string }> = []
  while (Date.now() < deadline) {
    runs = await app.db
      .selectFrom('report_runs')
      .select(['slot_key', 'trigger', 'status'])
      .where('status', '=', 'succeeded')
      .execute()
    if (runs.length >= 2) break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(runs.length >= 2, `scheduled runs happened (${runs.length})`)
  t.ok(
    runs.every((r) => r.trigger === 'schedule' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/.test(r.slot_key)),
    'keyed by whole-second slot times',
  )
  t.equal(new Set(runs.map((r) => r.slot_key)).size, runs.length, 'one run per slot')
  t.ok(app.logs.some((l) => l.msg === 'report schedule started'))

  await app.app.close()
  const count = async () => (await app.db.selectFrom('report_runs').select('id').execute()).length
  const after = await count()
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(await count(), after, 'no run after close')
})

t.test('a cron expression croner rejects is a configuration error naming REPORT_CRON', async (t) => {
  t.throws(() => nextSlot('61 * * * *', 'UTC', Date.now()), {
    name: 'ConfigError',
    message: /REPORT_CRON is not a valid cron expression/,
  })
})
