// Sessions live in the database so every app instance sees the same ones.
import t from 'tap'
import { ManualClock } from '../../../src/clock.js'
import { type Logger, silentLogger } from '../../../src/log.js'
import type { Session } from 'fastify'
import { DatabaseSessionStore } from '../../../src/http/plugins/session-store.js'
import { engines, openTestDb } from '../../db/engines.js'

/** Session data as it comes back from JSON (the cookie's expiry is a string there). */
const session = (data: object) => data as Session

function call<T>(fn: (cb: (err?: unknown, result?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve(result))))
}

for (const engine of engines()) {
  t.test(`${engine}: session store round trip, expiry and pruning`, async (t) => {
    const { db, another } = await openTestDb(t, engine)
    const clock = new ManualClock(1_795_000_000_000)
    const store = new DatabaseSessionStore(db, clock, silentLogger)
    // A second handle stands for a second app instance on the same database.
    const otherInstance = new DatabaseSessionStore(await another(), clock, silentLogger)

    const expires = new Date(clock.now() + 60_000).toISOString()
    await call((cb) => store.set('sid-1', session({ cookie: { expires }, endUserId: 7 }), cb))
    t.same(
      await call((cb) => otherInstance.get('sid-1', cb)),
      { cookie: { expires }, endUserId: 7 },
      'the other instance reads it',
    )

    await call((cb) => otherInstance.set('sid-1', session({ cookie: { expires }, endUserId: 7, operatorId: 3 }), cb))
    t.same(
      await call((cb) => store.get('sid-1', cb)),
      { cookie: { expires }, endUserId: 7, operatorId: 3 },
      'set twice upserts',
    )

    await call((cb) =>
      store.set('sid-2', session({ cookie: { expires: new Date(clock.now() + 1_000).toISOString() } }), cb),
    )
    clock.advance(2_000)
    t.equal(await call((cb) => store.get('sid-2', cb)), null, 'expired session reads as none')
    t.equal(await store.prune(), 1, 'prune deletes only the expired one')
    t.ok(await call((cb) => store.get('sid-1', cb)), 'live session survives pruning')

    await call((cb) => otherInstance.destroy('sid-1', cb))
    t.equal(await call((cb) => store.get('sid-1', cb)), null, 'destroy on one instance signs out on all')
    t.equal(await call((cb) => store.get('never', cb)), null)
  })
}

for (const engine of engines()) {
  t.test(`${engine}: a callback that throws is logged, never an unhandled rejection`, async (t) => {
    const { db } = await openTestDb(t, engine)
    const errors: Array<{ obj: object; msg?: string }> = []
    const log: Logger = { ...silentLogger, error: (obj, msg) => void errors.push({ obj, msg }) }
    const store = new DatabaseSessionStore(db, new ManualClock(1_795_000_000_000), log)
    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    t.teardown(() => void process.off('unhandledRejection', onRejection))

    // What @fastify/session does: continue the response inside the callback; here it throws, as
    // Node does for a header value it refuses (ERR_INVALID_CHAR).
    const boom = () => {
      throw new TypeError('Invalid character in header content ["location"]')
    }
    await new Promise<void>((resolve) =>
      store.set('sid-x', session({ cookie: {} }), () => {
        resolve()
        boom()
      }),
    )
    await new Promise<void>((resolve) =>
      store.get('sid-x', () => {
        resolve()
        boom()
      }),
    )
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.same(rejections, [], 'no unhandled rejection')
    t.equal(errors.length, 2, 'each throw is logged')
    t.match(errors[0], { msg: 'a request failed after the session store answered' })
  })
}
