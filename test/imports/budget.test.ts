// The shared Carta budget (src/imports/budget.ts): two users of one client id's budget, each on its
// own database connection as two instances would be, hammer it for about 3 s of wall time. No
// sliding one-second window may hold more than the per-second limit (fixed windows let twice that
// through across a boundary) and the whole run no more than the per-minute limit; a 429 block holds
// for everyone.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { openDatabase } from '../../src/db/index.js'
import { blockUntil, schedules, steadyRate, takeRequest } from '../../src/imports/budget.js'
import { startTestApp } from '../helpers/app.js'

/** The most requests any window [t, t + width) holds. */
function busiestWindow(times: number[], width: number): number {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= width) start++
    best = Math.max(best, end - start + 1)
  }
  return best
}

t.test('schedules keep any window within both limits', async (t) => {
  for (const limits of [
    { perSecond: 10, perMinute: 300 },
    { perSecond: 9, perMinute: 280 },
    { perSecond: 4, perMinute: 1000 },
    { perSecond: 1, perMinute: 1 },
    { perSecond: 10, perMinute: 3 },
  ]) {
    const { second, minute } = schedules(limits)
    // Any window shorter than the period holds at most burst + floor((period - 1) / T).
    t.ok(second.burst + Math.floor(999 / second.t) <= limits.perSecond, `second bound ${JSON.stringify(limits)}`)
    t.ok(minute.burst + Math.floor(59_999 / minute.t) <= limits.perMinute, `minute bound ${JSON.stringify(limits)}`)
  }
  // Carta's numbers: a burst, then close to the full minute rate (fixed windows needed halving).
  const rate = steadyRate({ perSecond: 10, perMinute: 300 })
  t.ok(rate > 4.7 && rate <= 5, `steady ${rate.toFixed(2)}/s at 10/s and 300/min`)
})

t.test('two users of one budget: no one-second window over the burst, the minute limit over the run', async (t) => {
  const app = await startTestApp(t)
  const second = await openDatabase(
    app.config.database,
    app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
  )
  t.teardown(() => second.destroy())
  // The minute limit binds within the run: a burst of 10, then one every 4 s (24 - 10 + 1 a minute).
  const limits = { perSecond: 10, perMinute: 24 }
  const granted: number[] = []
  const until = Date.now() + 3_000
  const user = async (db: typeof second) => {
    while (Date.now() < until) {
      // The time the budget decided on (a request goes out a moment later: hence the default margin).
      const now = Date.now()
      const wait = await takeRequest(db, 'client-a', limits, now)
      if (wait === 0) granted.push(now)
      else await sleep(Math.min(wait, until - Date.now(), 50))
    }
  }
  await Promise.all([user(app.db), user(second), user(app.db), user(second)])
  t.ok(busiestWindow(granted, 1000) <= 10, `busiest second: ${busiestWindow(granted, 1000)} of 10`)
  t.ok(granted.length <= 24, `${granted.length} requests in 3 s, at most 24 a minute`)
  t.ok(granted.length >= 10, `the burst is used, not starved (${granted.length})`)

  // Per-second pace alone (the minute out of the way): still never 11 in a second.
  const fast = { perSecond: 10, perMinute: 100_000 }
  const paced: number[] = []
  const end = Date.now() + 2_500
  const racer = async (db: typeof second) => {
    while (Date.now() < end) {
      const now = Date.now()
      const wait = await takeRequest(db, 'client-b', fast, now)
      if (wait === 0) paced.push(now)
      else await sleep(Math.min(wait, 20))
    }
  }
  await Promise.all([racer(app.db), racer(second)])
  t.ok(busiestWindow(paced, 1000) <= 10, `busiest second: ${busiestWindow(paced, 1000)} of 10`)
  t.ok(paced.length >= 20, `about 10 a second over 2.5 s (${paced.length})`)

  // Another client id has its own budget; a 429 block stops every user of the blocked one.
  t.equal(await takeRequest(second, 'client-c', limits, Date.now()), 0, 'another client id is untouched')
  await blockUntil(app.db, 'client-c', Date.now() + 5_000)
  const blocked = await takeRequest(second, 'client-c', limits, Date.now())
  t.ok(blocked > 4_000, `blocked for the other instance too (${blocked} ms)`)
})
