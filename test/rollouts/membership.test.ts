import t from 'tap'
import type { Test } from 'tap'
import { computeMembership, exactCounts, storedCounts, syncUsersOnApp } from '../../src/rollouts/membership.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp } from '../helpers/app.js'
import { addGrant, addUser, appId, breakGrant } from '../helpers/ledger.js'

const V1 = ['read_issuer_info', 'read_user_info']
const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']

t.test('the membership rule', async (t) => {
  const base = { required: V2, appRetired: false, userStatus: 'connected' as const, lastAuthorizedAt: 5 }
  const extra = computeMembership({
    ...base,
    grant: { appId: 1, scopes: [...V2, 'readwrite_issuer_info'], createdAt: 9 },
  })
  t.equal(extra.state, 'covered', 'holding more than required is covered')
  t.same(extra.missing, [])
  const partial = computeMembership({ ...base, grant: { appId: 1, scopes: V1, createdAt: 9 } })
  t.equal(partial.state, 'lacking')
  t.same(partial.missing, ['read_issuer_capitalizationtablesummary'])
  t.equal(partial.authorizedAt, 9)
  const none = computeMembership({ ...base, grant: null })
  t.match(none, { state: 'reconnect', reason: 'no_active_grant', missing: V2, authorizedAt: 5 })
  const broken = computeMembership({
    ...base,
    userStatus: 'needs_reconnect',
    grant: { appId: 1, scopes: V2, createdAt: 9 },
  })
  t.match(broken, { state: 'reconnect', reason: 'needs_reconnect' })
  const retired = computeMembership({ ...base, appRetired: true, grant: { appId: 1, scopes: V2, createdAt: 9 } })
  t.match(retired, { state: 'lacking', reason: 'app_retired', missing: [] })
})

async function assertCounts(
  t: Test,
  db: Parameters<typeof exactCounts>[0],
  rolloutId: number,
  expected: Record<string, number>,
  label: string,
) {
  const stored = Object.fromEntries([...(await storedCounts(db, rolloutId))].filter(([, n]) => n !== 0))
  const exact = Object.fromEntries([...(await exactCounts(db, rolloutId))].filter(([, n]) => n !== 0))
  t.same(stored, exact, `${label}: counters equal an exact recount`)
  t.match(exact, expected, `${label}: expected figures`)
}

t.test('set-based creation, then counters kept right by deltas as users reconnect', async (t) => {
  const ctx = await startTestApp(t)
  const { db } = ctx
  const now = ctx.clock.now()
  const v1 = await appId(db, 'production-v1')
  const v2 = await appId(db, 'production-v2')

  const alice = await addUser(db, now, { carta: 'c-alice', email: 'alice@example.com' })
  await addGrant(ctx.app.deps, alice, 'production-v1', V1, now - 3000)
  const bob = await addUser(db, now, { carta: 'c-bob', email: 'bob@example.com' })
  await addGrant(ctx.app.deps, bob, 'production-v2', [...V2, 'readwrite_extra'], now - 2000) // more than required
  const carol = await addUser(db, now, { email: 'carol@example.com' })
  await addGrant(ctx.app.deps, carol, 'production-v2', ['read_issuer_info'], now - 1000) // partial grant
  const dave = await addUser(db, now, { carta: 'c-dave' })
  await addGrant(ctx.app.deps, dave, 'production-v2', V2, now - 500)
  await breakGrant(ctx.app.deps, dave, now - 100) // token broke: must reconnect
  const erin = await addUser(db, now, { carta: 'c-erin' }) // never completed a grant

  const id = await createRollout(db, { name: 'Cap table', appId: v2, scopes: V2 }, 'operator:ops', now)
  const state = async (userId: number) =>
    db
      .selectFrom('rollout_members')
      .selectAll()
      .where('rollout_id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow()
  t.match(await state(alice), {
    state: 'lacking',
    needs_action: 1,
    missing_scopes: 'read_issuer_capitalizationtablesummary',
    reason: 'missing_scopes',
    app_id: v1,
    authorized_at: now - 3000,
  })
  t.match(await state(bob), { state: 'covered', needs_action: 0, missing_scopes: '', reason: null })
  t.match(await state(carol), {
    state: 'lacking',
    missing_scopes: 'read_issuer_capitalizationtablesummary read_user_info',
  })
  t.match(await state(dave), {
    state: 'reconnect',
    reason: 'needs_reconnect',
    missing_scopes: V2.join(' '),
    authorized_at: now - 500,
  })
  t.match(await state(erin), { state: 'reconnect', reason: 'no_active_grant', app_id: null, authorized_at: now })
  await assertCounts(
    t,
    db,
    id,
    {
      members: 5,
      covered: 1,
      lacking: 2,
      reconnect: 2,
      'missing:read_issuer_capitalizationtablesummary': 4,
      'missing:read_user_info': 3,
      'missing:read_issuer_info': 2,
      [`app:${v1}`]: 1,
      [`app:${v2}`]: 2,
    },
    'after creation',
  )

  // The per-user sync must agree with the set-based build for every user.
  const built = await db
    .selectFrom('rollout_members')
    .selectAll()
    .where('rollout_id', '=', id)
    .orderBy('user_id')
    .execute()
  await db.transaction().execute(async (trx) => {
    const { syncUserRollouts } = await import('../../src/rollouts/membership.js')
    for (const u of [alice, bob, carol, dave, erin]) await syncUserRollouts(trx, u)
  })
  t.same(
    await db.selectFrom('rollout_members').selectAll().where('rollout_id', '=', id).orderBy('user_id').execute(),
    built,
    'sync of unchanged users changes nothing',
  )

  await addGrant(ctx.app.deps, alice, 'production-v2', V2, now + 1000)
  t.match(await state(alice), { state: 'covered', app_id: v2 })
  await assertCounts(t, db, id, { covered: 2, lacking: 1, [`app:${v2}`]: 3 }, 'alice reauthorized with every scope')

  await addGrant(ctx.app.deps, carol, 'production-v2', ['read_issuer_info', 'read_user_info'], now + 2000)
  t.match(await state(carol), { state: 'lacking', missing_scopes: 'read_issuer_capitalizationtablesummary' })
  await assertCounts(t, db, id, { covered: 2, lacking: 1, 'missing:read_user_info': 2 }, 'carol granted one more scope')

  await addGrant(ctx.app.deps, dave, 'production-v2', [...V2, 'readwrite_extra'], now + 3000)
  await addGrant(ctx.app.deps, erin, 'production-v1', V1, now + 4000)
  await assertCounts(t, db, id, { members: 5, covered: 3, lacking: 2, [`app:${v1}`]: 1 }, 'dave and erin connected')
  t.notOk(
    await db
      .selectFrom('rollout_member_missing')
      .selectAll()
      .where('rollout_id', '=', id)
      .where('user_id', '=', dave)
      .executeTakeFirst(),
    'no missing rows for a covered user',
  )

  await breakGrant(ctx.app.deps, bob, now + 5000)
  await assertCounts(t, db, id, { covered: 2, reconnect: 1 }, 'bob broke')

  const frank = await addUser(db, now, { carta: 'c-frank' })
  await addGrant(ctx.app.deps, frank, 'production-v2', V2, now + 6000)
  await assertCounts(t, db, id, { members: 6, covered: 3 }, 'a new user joins the rollout on first grant')

  // Retiring production-v1 moves its users (erin) to lacking even if they held every scope.
  const second = await createRollout(db, { name: 'Basics', appId: v2, scopes: ['read_user_info'] }, 'operator:ops', now)
  await assertCounts(t, db, second, { covered: 5, reconnect: 1 }, 'second rollout')
  await db
    .updateTable('oauth_apps')
    .set({ status: 'retired', is_current: 0, retired_at: now })
    .where('id', '=', v1)
    .execute()
  await db.transaction().execute((trx) => syncUsersOnApp(trx, v1))
  const erinSecond = await db
    .selectFrom('rollout_members')
    .selectAll()
    .where('rollout_id', '=', second)
    .where('user_id', '=', erin)
    .executeTakeFirstOrThrow()
  t.match(erinSecond, { state: 'lacking', reason: 'app_retired', needs_action: 1, missing_scopes: '' })
  await assertCounts(t, db, second, { covered: 4, lacking: 1 }, 'after retiring v1')
  await assertCounts(t, db, id, { covered: 3, lacking: 2 }, 'first rollout after retiring v1')
  // A later per-user sync agrees with the set-based retirement.
  await db.transaction().execute(async (trx) => {
    const { syncUserRollouts } = await import('../../src/rollouts/membership.js')
    await syncUserRollouts(trx, erin)
  })
  await assertCounts(t, db, second, { covered: 4, lacking: 1 }, 'per-user sync after retirement')
  await addGrant(ctx.app.deps, erin, 'production-v2', ['read_user_info'], now + 7000)
  await assertCounts(t, db, second, { covered: 5 }, 'erin moved to v2')

  // Archived rollouts are no longer maintained.
  const { archiveRollout } = await import('../../src/rollouts/rollouts.js')
  t.ok(await archiveRollout(db, second, 'operator:ops', now))
  const before = await storedCounts(db, second)
  await breakGrant(ctx.app.deps, erin, now + 8000)
  t.same(await storedCounts(db, second), before, 'archived counters untouched')
  const audit = await db
    .selectFrom('audit_events')
    .select(['type', 'rollout_id'])
    .where('type', 'like', 'rollout.%')
    .orderBy('id')
    .execute()
  t.same(
    audit.map((a) => a.type),
    ['rollout.created', 'rollout.created', 'rollout.archived'],
  )
})
