// The background, chunked rollout build (src/rollouts/build.ts): same result as the one-shot
// build, right for users who reconnect or appear mid-build, resumable after a crash, and never
// double-counting when two builders (two instances) race for the same rollout.
import { Writable } from 'node:stream'
import t from 'tap'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import type { ManualClock } from '../../src/clock.js'
import { type Db, openDatabase } from '../../src/db/index.js'
import { BUILD_LEASE_MS, buildChunk, finishBuild, runRolloutBuild, takeBuildLease } from '../../src/rollouts/build.js'
import { buildRolloutMembership, exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { startRollout } from '../../src/rollouts/rollouts.js'
import { buildRollouts, startTestApp } from '../helpers/app.js'
import { type Ledger, addGrant, addUser, appId, breakGrant, signedInOperator } from '../helpers/ledger.js'

const V1 = ['read_issuer_info', 'read_user_info']
const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']
const CAP = 'read_issuer_capitalizationtablesummary'

/** A mixed ledger: covered, partial, on v1, on the (later retired) playground, broken, never connected. */
async function seedUsers(ledger: Ledger, now: number, count: number): Promise<number[]> {
  const ids: number[] = []
  for (let i = 0; i < count; i++) {
    const u = await addUser(ledger.db, now - i, { carta: `c-${i}`, email: `u${i}@example.com` })
    ids.push(u)
    const at = now - 1000 * (i % 13)
    switch (i % 7) {
      case 0:
        await addGrant(ledger, u, 'production-v2', [...V2, 'readwrite_more'], at)
        break
      case 1:
        await addGrant(ledger, u, 'production-v2', ['read_issuer_info'], at)
        break
      case 2:
        await addGrant(ledger, u, 'production-v1', V1, at)
        break
      case 3:
        await addGrant(ledger, u, 'playground', V2, at)
        break
      case 4:
        await addGrant(ledger, u, 'production-v2', V2, at)
        await breakGrant(ledger, u, at + 10)
        break
      case 5:
        await addGrant(ledger, u, 'production-v1', ['read_user_info'], at - 5000)
        await addGrant(ledger, u, 'production-v2', V2, at)
        break
      default:
        break // never completed a grant
    }
  }
  return ids
}

const nonZero = (m: Map<string, number>) =>
  Object.fromEntries([...m].filter(([, n]) => n !== 0).sort(([a], [b]) => a.localeCompare(b)))

async function members(db: Db, rolloutId: number) {
  const rows = await db
    .selectFrom('rollout_members')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .orderBy('user_id')
    .execute()
  return rows.map(({ rollout_id: _r, ...rest }) => ({ ...rest, authorized_at: Number(rest.authorized_at) }))
}

async function missing(db: Db, rolloutId: number) {
  const rows = await db
    .selectFrom('rollout_member_missing')
    .select(['scope', 'user_id'])
    .where('rollout_id', '=', rolloutId)
    .orderBy('user_id')
    .orderBy('scope')
    .execute()
  return rows
}

/** A rollout built the old way (one transaction, every user), as the reference. */
async function referenceRollout(db: Db, v2: number, now: number, scopes = V2): Promise<number> {
  const id = await startRollout(db, { name: 'reference', appId: v2, scopes }, 'operator:test', now)
  await db.transaction().execute(async (trx) => {
    await buildRolloutMembership(trx, id, scopes)
    await trx.updateTable('rollouts').set({ build_status: 'ready' }).where('id', '=', id).execute()
  })
  return id
}

/** The chunked result equals the reference: member rows, missing triples, and exact counters. */
async function assertSameAsReference(t: Test, db: Db, built: number, reference: number, label: string) {
  t.same(await members(db, built), await members(db, reference), `${label}: member rows equal the one-shot build`)
  t.same(await missing(db, built), await missing(db, reference), `${label}: missing triples equal the one-shot build`)
  const stored = nonZero(await storedCounts(db, built))
  t.same(stored, nonZero(await exactCounts(db, built)), `${label}: counters equal an exact recount`)
  t.same(stored, nonZero(await storedCounts(db, reference)), `${label}: counters equal the one-shot build's`)
}

async function buildRow(db: Db, id: number) {
  const row = await db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
  return {
    status: row.build_status,
    cursor: Number(row.build_cursor),
    done: Number(row.build_done),
    total: Number(row.build_total),
    owner: row.build_lock_owner,
  }
}

t.test('chunked build equals the one-shot build', async (t) => {
  const ctx = await startTestApp(t)
  const { db } = ctx
  const now = ctx.clock.now()
  const v2 = await appId(db, 'production-v2')
  const ids = await seedUsers(ctx.app.deps, now, 300)
  // A retired app: its users are lacking even when they hold every scope.
  await db
    .updateTable('oauth_apps')
    .set({ status: 'retired', is_current: 0, retired_at: now })
    .where('key', '=', 'playground')
    .execute()

  const id = await startRollout(db, { name: 'Cap table', appId: v2, scopes: V2 }, 'operator:test', now)
  t.match(await buildRow(db, id), { status: 'building', cursor: 0, done: 0, total: 300 })
  t.same(await members(db, id), [], 'creation measures nobody')
  const stats = await runRolloutBuild(db, id, { chunkSize: 7, now: () => now })
  t.equal(stats.outcome, 'ready')
  t.equal(stats.chunks, Math.ceil(300 / 7))
  t.match(await buildRow(db, id), { status: 'ready', cursor: ids[ids.length - 1], done: 300, owner: null })

  const reference = await referenceRollout(db, v2, now)
  await assertSameAsReference(t, db, id, reference, 'V2')
  t.match(nonZero(await storedCounts(db, id)), { members: 300 })
  t.ok(
    (await members(db, id)).some((m) => m.reason === 'app_retired'),
    'the retired app shows',
  )

  // Again for a one-scope rollout with an odd chunk size, and a second run is a no-op.
  const small = await startRollout(db, { name: 'Basics', appId: v2, scopes: ['read_user_info'] }, 'operator:test', now)
  t.equal((await runRolloutBuild(db, small, { chunkSize: 64 })).outcome, 'ready')
  t.equal(
    (await runRolloutBuild(db, small, { chunkSize: 64 })).outcome,
    'ready',
    'building a ready rollout does nothing',
  )
  await assertSameAsReference(t, db, small, await referenceRollout(db, v2, now, ['read_user_info']), 'one scope')
})

t.test('users who reconnect, break or appear mid-build end up right', async (t) => {
  const ctx = await startTestApp(t)
  const { db } = ctx
  const now = ctx.clock.now()
  const v2 = await appId(db, 'production-v2')
  const ids = await seedUsers(ctx.app.deps, now, 60)
  const id = await startRollout(db, { name: 'Cap table', appId: v2, scopes: V2 }, 'operator:test', now)

  const measuredEarly = ids[3]! // on v1, in the first chunk
  const measuredLate = ids[45]! // on v1, in a later chunk
  const brokenLate = ids[50]! // covered on v2 until it breaks mid-build
  const created: number[] = []
  let chunks = 0
  const stats = await runRolloutBuild(db, id, {
    chunkSize: 10,
    now: () => now,
    afterChunk: async ({ cursor }) => {
      chunks++
      // On SQLite the per-chunk deltas keep the provisional counters exact at every step.
      t.same(
        nonZero(await storedCounts(db, id)),
        nonZero(await exactCounts(db, id)),
        `counters exact after chunk ${chunks}`,
      )
      if (chunks === 1) {
        t.ok(cursor >= measuredEarly && cursor < measuredLate, 'one user measured, the other not yet')
        await addGrant(ctx.app.deps, measuredEarly, 'production-v2', V2, now + 100) // row exists: sync updates it
        await addGrant(ctx.app.deps, measuredLate, 'production-v2', V2, now + 100) // no row yet: sync inserts it, the chunk keeps it
        await breakGrant(ctx.app.deps, brokenLate, now + 200)
        const newcomer = await addUser(db, now + 300, { carta: 'c-new', email: 'new@example.com' })
        await addGrant(ctx.app.deps, newcomer, 'production-v1', V1, now + 300) // synced at once
        created.push(newcomer, await addUser(db, now + 300, { email: 'silent@example.com' })) // no grant, no sync
      }
    },
  })
  t.equal(stats.outcome, 'ready')
  const state = async (u: number) =>
    db
      .selectFrom('rollout_members')
      .selectAll()
      .where('rollout_id', '=', id)
      .where('user_id', '=', u)
      .executeTakeFirstOrThrow()
  t.match(await state(measuredEarly), { state: 'covered', authorized_at: now + 100 })
  t.match(await state(measuredLate), { state: 'covered', authorized_at: now + 100 })
  t.match(await state(brokenLate), { state: 'reconnect', reason: 'needs_reconnect' })
  t.match(await state(created[0]!), { state: 'lacking', missing_scopes: CAP })
  t.match(await state(created[1]!), { state: 'reconnect', reason: 'no_active_grant' })
  t.equal((await buildRow(db, id)).done, 62, 'every user measured once, the two newcomers included')
  await assertSameAsReference(t, db, id, await referenceRollout(db, v2, now), 'after mid-build changes')

  // A user who appears after the last chunk but before the finishing transaction is measured too.
  const late = await startRollout(db, { name: 'Late', appId: v2, scopes: V2 }, 'operator:test', now)
  t.ok(await takeBuildLease(db, late, 'me', now))
  while ((await buildChunk(db, late, 'me', now, 25)) === 'measured');
  const straggler = await addUser(db, now, { email: 'straggler@example.com' })
  t.ok(await finishBuild(db, late, 'me', now))
  t.match(
    await db
      .selectFrom('rollout_members')
      .selectAll()
      .where('rollout_id', '=', late)
      .where('user_id', '=', straggler)
      .executeTakeFirstOrThrow(),
    { state: 'reconnect', reason: 'no_active_grant' },
  )
  t.match(await buildRow(db, late), { status: 'ready', cursor: straggler, owner: null })
  await assertSameAsReference(t, db, late, await referenceRollout(db, v2, now), 'straggler')
})

t.test(
  'a build left mid-way by a crash resumes from its cursor once the lease expires, also on app start',
  async (t) => {
    const ctx = await startTestApp(t)
    const { db } = ctx
    const clock = ctx.clock as ManualClock
    const now = clock.now()
    const v2 = await appId(db, 'production-v2')
    await seedUsers(ctx.app.deps, now, 50)
    const id = await startRollout(db, { name: 'Cap table', appId: v2, scopes: V2 }, 'operator:test', now)
    // The crashed builder: took the lease, measured two chunks, then vanished holding it.
    t.ok(await takeBuildLease(db, id, 'crashed', now))
    t.equal(await buildChunk(db, id, 'crashed', now, 8), 'measured')
    t.equal(await buildChunk(db, id, 'crashed', now, 8), 'measured')
    t.match(await buildRow(db, id), { status: 'building', done: 16, owner: 'crashed' })

    const early = await runRolloutBuild(db, id, { owner: 'next', now: () => clock.now(), chunkSize: 8 })
    t.equal(early.outcome, 'busy', 'a live lease is respected')
    t.match(await buildRow(db, id), { done: 16, owner: 'crashed' })

    // Restart after the lease expired: the app's start resumes it (background jobs on).
    clock.advance(BUILD_LEASE_MS + 1)
    const restarted = await buildApp({
      config: ctx.config,
      db,
      clock,
      backgroundJobs: true,
      logStream: new Writable({ write: (_c, _e, done) => done() }),
    })
    await restarted.ready()
    await buildRollouts(restarted)
    await restarted.close()
    t.match(await buildRow(db, id), { status: 'ready', done: 50, owner: null }, 'resumed, and no chunk measured twice')
    await assertSameAsReference(t, db, id, await referenceRollout(db, v2, now), 'resumed')

    // The crashed builder, back from the dead, writes nothing more.
    t.equal(await buildChunk(db, id, 'crashed', clock.now(), 8), 'lost')
    t.notOk(await finishBuild(db, id, 'crashed', clock.now()))
  },
)

t.test('two builders on two connections racing for one rollout never double-count', async (t) => {
  const ctx = await startTestApp(t)
  const { db } = ctx
  const now = ctx.clock.now()
  const v2 = await appId(db, 'production-v2')
  await seedUsers(ctx.app.deps, now, 120)
  const other = await openDatabase(ctx.config.database)
  t.teardown(() => other.destroy())

  // Fencing: a builder whose lease was taken over cannot commit a chunk.
  const fenced = await startRollout(db, { name: 'Fenced', appId: v2, scopes: V2 }, 'operator:test', now)
  t.ok(await takeBuildLease(db, fenced, 'A', now))
  t.notOk(await takeBuildLease(other, fenced, 'B', now), 'B cannot take a live lease')
  t.ok(await takeBuildLease(other, fenced, 'B', now + BUILD_LEASE_MS + 1), 'B takes it once expired')
  t.equal(await buildChunk(db, fenced, 'A', now + BUILD_LEASE_MS + 2, 10), 'lost')
  t.match(await buildRow(db, fenced), { done: 0, cursor: 0, owner: 'B' }, "A's chunk wrote nothing")
  t.equal(
    (await runRolloutBuild(other, fenced, { owner: 'B', chunkSize: 10, now: () => now + BUILD_LEASE_MS + 3 })).outcome,
    'ready',
  )

  // A free-for-all: 1 ms leases on the wall clock, so the two keep stealing the build from each other.
  const id = await startRollout(db, { name: 'Race', appId: v2, scopes: V2 }, 'operator:test', now)
  const outcomes: string[] = []
  for (let round = 0; round < 50 && (await buildRow(db, id)).status !== 'ready'; round++) {
    const results = await Promise.all([
      runRolloutBuild(db, id, { owner: 'A', chunkSize: 6, leaseMs: 1, now: Date.now }),
      runRolloutBuild(other, id, { owner: 'B', chunkSize: 6, leaseMs: 1, now: Date.now }),
    ])
    outcomes.push(...results.map((r) => r.outcome))
  }
  t.ok(outcomes.includes('ready'), `finished (${outcomes.join(', ')})`)
  t.match(await buildRow(db, id), { status: 'ready', done: 120 }, 'each user measured by exactly one chunk')
  await assertSameAsReference(t, db, id, await referenceRollout(db, v2, now), 'raced')
  await assertSameAsReference(t, db, fenced, await referenceRollout(db, v2, now), 'fenced')
})

t.test(
  'the rollout page while building: progress notice, reload, partial list; the dashboard says building',
  async (t) => {
    const ctx = await startTestApp(t)
    const { db, url } = ctx
    const now = ctx.clock.now()
    const v2 = await appId(db, 'production-v2')
    const agent = await signedInOperator(db, url, now)
    const ids: number[] = []
    for (let i = 0; i < 30; i++) {
      const u = await addUser(db, now, { carta: `c-${i}`, email: `p${String(i).padStart(2, '0')}@example.com` })
      await addGrant(ctx.app.deps, u, 'production-v1', V1, now)
      ids.push(u)
    }
    const id = await startRollout(db, { name: 'Cap table', appId: v2, scopes: V2 }, 'operator:test', now)
    t.ok(await takeBuildLease(db, id, 'test', now))
    t.equal(await buildChunk(db, id, 'test', now, 10), 'measured')

    const page = await agent.get(`${url}/admin/rollouts/${id}`)
    t.equal(page.status, 200)
    t.match(page.text, 'Measuring users: 10 of 30 (33%) — the figures below fill in as it goes')
    t.match(page.text, '<span class="badge warn">building</span>')
    t.equal(page.headers.get('refresh'), '5', 'the page reloads itself while building')
    t.match(page.text, 'p09@example.com', 'measured users are listed')
    t.notMatch(page.text, 'p10@example.com', 'unmeasured users are not yet')
    t.match(page.text, /10<\/div><div class="label">lack some scope/)
    const dash = await agent.get(`${url}/admin`)
    t.match(dash.text, '<span class="badge warn">building</span>')
    t.match(dash.text, '10 of 30 users measured')

    t.equal((await runRolloutBuild(db, id, { owner: 'test', chunkSize: 10, now: () => now })).outcome, 'ready')
    const built = await agent.get(`${url}/admin/rollouts/${id}`)
    t.notMatch(built.text, 'Measuring users')
    t.equal(built.headers.get('refresh'), null, 'no reload once built')
    t.match(built.text, '<span class="badge ok">active</span>')
    t.match(built.text, 'p29@example.com')
    t.match(built.text, /30<\/div><div class="label">lack some scope/)
    t.match(built.text, '<ul class="scopes required-scopes">')
    t.notMatch((await agent.get(`${url}/admin`)).text, 'building')
  },
)

t.test(
  'a row with an open link offers "Show link" (the links page explains reuse), not a misleading "New link"',
  async (t) => {
    const ctx = await startTestApp(t)
    const { db, url } = ctx
    const now = ctx.clock.now()
    const agent = await signedInOperator(db, url, now)
    const u = await addUser(db, now, { carta: 'c-1', email: 'one@example.com' })
    await addGrant(ctx.app.deps, u, 'production-v1', V1, now)
    const dash = await agent.get(`${url}/admin`)
    const created = await agent.post(`${url}/admin/rollouts`, {
      _csrf: hiddenCsrf(dash.text),
      name: 'Cap',
      app_id: String(await appId(db, 'production-v2')),
      scopes: V2,
    })
    t.equal(created.status, 303)
    await buildRollouts(ctx.app)
    const page = await agent.get(new URL(created.location!, url).toString())
    t.match(page.text, '>Issue link</button>')
    t.notMatch(page.text, 'name="return_to"')
    const issued = await agent.post(`${url}/admin/rollouts/1/links`, {
      _csrf: hiddenCsrf(page.text),
      user_id: String(u),
    })
    t.equal(issued.status, 303)
    const withLink = await agent.get(`${url}/admin/rollouts/1`)
    t.match(withLink.text, '<input type="hidden" name="return_to" value="link">')
    t.match(withLink.text, '>Show link</button>')
    t.notMatch(withLink.text, 'New link')
    const shown = await agent.post(`${url}/admin/rollouts/1/links`, {
      _csrf: hiddenCsrf(withLink.text),
      user_id: String(u),
      return_to: 'link',
    })
    t.equal(shown.status, 303)
    t.match(shown.location, `/admin/rollouts/1/links/${u}?reused=1`, 'the same open link, and the links page says so')
    t.equal(
      Number(
        (
          await db
            .selectFrom('reauth_links')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      ),
      1,
      'no second link',
    )
  },
)

function hiddenCsrf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html)
  if (!m) throw new Error('no _csrf field')
  return m[1]!
}
