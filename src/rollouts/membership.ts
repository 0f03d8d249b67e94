// Rollout membership: one row per (rollout, end user) comparing the user's active grant with the
// rollout's required scopes, plus rollout_counts kept in step by deltas in the same transaction,
// so the dashboard never rescans 3M grants (src/README.md, "Scale").
//
// States:
//   covered   – the active grant holds every required scope (holding MORE is still covered;
//               scopes are a set, RFC 6749 §3.3) and its app is not retired;
//   lacking   – the active grant misses a required scope, or its app is retired, or nobody knows
//               its scopes (imported without them): an unknown set lacks every required scope
//               and says so (reason scopes_unknown) instead of claiming them missing;
//   reconnect – no active grant, or the user is marked needs_reconnect (broken/revoked token):
//               such a user holds nothing usable, so every required scope counts as missing.
import { type Insertable, type Kysely, sql, type Transaction } from 'kysely'
import { chunked, insertRows } from '../db/batch.js'
import type { Database } from '../db/schema.js'
import { formatScopes, missingScopes, parseScopes } from '../scopes.js'
import type { MemberReason, MemberState, RolloutMemberTable } from './tables.js'

type Db = Kysely<Database>
type Trx = Transaction<Database>

export interface Membership {
  state: MemberState
  reason: MemberReason | null
  /** Required scopes the user lacks, sorted. */
  missing: string[]
  appId: number | null
  authorizedAt: number
}

export interface MemberInputs {
  required: string[]
  /** The user's active grant (status active and referenced by end_users.active_grant_id). */
  grant: { appId: number; scopes: string[]; createdAt: number; scopesUnknown?: boolean } | null
  appRetired: boolean
  userStatus: 'connected' | 'needs_reconnect'
  /** When the user last authorized (falls back to the latest grant, then the user's creation). */
  lastAuthorizedAt: number
}

/** The pure rule, shared by the per-user sync and the tests. */
export function computeMembership(input: MemberInputs): Membership {
  const required = parseScopes(input.required.join(' '))
  const { grant } = input
  if (!grant || input.userStatus === 'needs_reconnect') {
    return {
      state: 'reconnect',
      reason: input.userStatus === 'needs_reconnect' ? 'needs_reconnect' : 'no_active_grant',
      missing: required,
      appId: grant?.appId ?? null,
      authorizedAt: input.lastAuthorizedAt,
    }
  }
  const missing = grant.scopesUnknown ? required : missingScopes(required, grant.scopes)
  if (input.appRetired || missing.length > 0) {
    return {
      state: 'lacking',
      reason: input.appRetired ? 'app_retired' : grant.scopesUnknown ? 'scopes_unknown' : 'missing_scopes',
      missing,
      appId: grant.appId,
      authorizedAt: grant.createdAt,
    }
  }
  return { state: 'covered', reason: null, missing: [], appId: grant.appId, authorizedAt: grant.createdAt }
}

/** Counter buckets one member contributes to (see migrations/0002_rollouts.ts). */
export function memberBuckets(m: Pick<Membership, 'state' | 'missing' | 'appId'>): string[] {
  return ['members', m.state, ...m.missing.map((s) => `missing:${s}`), ...(m.appId !== null ? [`app:${m.appId}`] : [])]
}

/**
 * Adds the deltas to rollout_counts with a portable upsert (count = count + delta), in ONE
 * statement whose rows are sorted by (rollout, bucket): concurrent transactions then lock counter
 * rows in the same order and cannot deadlock on them (PostgreSQL locks the rows of a multi-row
 * INSERT … ON CONFLICT DO UPDATE in VALUES order).
 */
export async function applyCountDeltas(db: Trx, rolloutId: number, deltas: Map<string, number>): Promise<void> {
  await applyAllCountDeltas(
    db,
    [...deltas].map(([bucket, delta]) => ({ rolloutId, bucket, delta })),
  )
}

export async function applyAllCountDeltas(
  db: Trx,
  deltas: Array<{ rolloutId: number; bucket: string; delta: number }>,
): Promise<void> {
  const rows = deltas
    .filter((d) => d.delta !== 0)
    .sort((a, b) => a.rolloutId - b.rolloutId || (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : 0))
    .map((d) => ({ rollout_id: d.rolloutId, bucket: d.bucket, count: d.delta }))
  if (rows.length === 0) return
  await db
    .insertInto('rollout_counts')
    .values(rows)
    .onConflict((oc) =>
      oc
        .columns(['rollout_id', 'bucket'])
        .doUpdateSet((eb) => ({ count: eb('rollout_counts.count', '+', eb.ref('excluded.count')) })),
    )
    .execute()
}

/** What the database says about each of `userIds`, for computeMembership (set-based). */
async function loadMemberInputs(db: Trx, userIds: number[]): Promise<Map<number, Omit<MemberInputs, 'required'>>> {
  const users = []
  for (const ids of chunked(userIds))
    users.push(
      ...(await db
        .selectFrom('end_users')
        .select(['id', 'status', 'active_grant_id', 'created_at'])
        .where('id', 'in', ids)
        .execute()),
    )
  const activeIds = users.flatMap((u) => (u.active_grant_id !== null ? [u.active_grant_id] : []))
  const grants = new Map<number, { appId: number; createdAt: number; unknown: boolean; retired: boolean }>()
  for (const ids of chunked(activeIds)) {
    const rows = await db
      .selectFrom('grants')
      .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
      .select([
        'grants.id',
        'grants.app_id',
        'grants.created_at',
        'grants.scopes_source',
        'oauth_apps.status as app_status',
      ])
      .where('grants.id', 'in', ids)
      .where('grants.status', '=', 'active')
      .execute()
    for (const row of rows)
      grants.set(row.id, {
        appId: row.app_id,
        createdAt: row.created_at,
        unknown: row.scopes_source === 'unknown',
        retired: row.app_status === 'retired',
      })
  }
  const scopes = new Map<number, string[]>()
  for (const ids of chunked([...grants.keys()])) {
    const rows = await db
      .selectFrom('grant_scopes')
      .select(['grant_id', 'scope'])
      .where('grant_id', 'in', ids)
      .execute()
    for (const row of rows) {
      const list = scopes.get(row.grant_id)
      if (list) list.push(row.scope)
      else scopes.set(row.grant_id, [row.scope])
    }
  }
  // Without a usable grant, the user last authorized at their latest grant (else their creation).
  const withoutGrant = users.filter((u) => u.active_grant_id === null || !grants.has(u.active_grant_id))
  const latest = new Map<number, number>()
  for (const ids of chunked(withoutGrant.map((u) => u.id))) {
    const rows = await db
      .selectFrom('grants')
      .select(['user_id', (eb) => eb.fn.max('created_at').as('at')])
      .where('user_id', 'in', ids)
      .groupBy('user_id')
      .execute()
    for (const row of rows) if (row.at !== null) latest.set(row.user_id, Number(row.at))
  }
  const inputs = new Map<number, Omit<MemberInputs, 'required'>>()
  for (const user of users) {
    const row = user.active_grant_id !== null ? grants.get(user.active_grant_id) : undefined
    const grant: MemberInputs['grant'] = row
      ? {
          appId: row.appId,
          scopes: scopes.get(user.active_grant_id!) ?? [],
          createdAt: row.createdAt,
          scopesUnknown: row.unknown,
        }
      : null
    inputs.set(user.id, {
      grant,
      appRetired: row?.retired ?? false,
      userStatus: user.status,
      lastAuthorizedAt: grant?.createdAt ?? latest.get(user.id) ?? user.created_at,
    })
  }
  return inputs
}

/**
 * Recomputes this user's membership in every active rollout and adjusts the counters. Call it
 * inside the transaction that changed the user's active grant, its scopes, its status or the
 * user's status.
 */
export async function syncUserRollouts(db: Trx, userId: number): Promise<void> {
  await syncUsersRollouts(db, [userId])
}

/** A user who became covered in a rollout by a sync (the webhook's rollout.user_covered). */
export interface NewlyCovered {
  userId: number
  rolloutId: number
}

/**
 * syncUserRollouts for many users at once (an import batch): the same rule (computeMembership,
 * memberBuckets) with a few set-based statements per batch instead of several per user, and ONE
 * counter upsert whose deltas are summed over the batch and sorted (the lock order stays the same).
 * Returns who became covered where, in the order of `userIds` and rollout id.
 */
export async function syncUsersRollouts(db: Trx, userIds: number[]): Promise<NewlyCovered[]> {
  if (userIds.length === 0) return []
  const rollouts = await db
    .selectFrom('rollouts')
    .select(['id', 'required_scopes'])
    .where('status', '=', 'active')
    .orderBy('id')
    .execute()
  if (rollouts.length === 0) return []
  const inputs = await loadMemberInputs(db, userIds)
  const rolloutIds = rollouts.map((r) => r.id)
  const before = new Map<
    string,
    {
      state: MemberState
      missing_scopes: string
      app_id: number | null
      reason: MemberReason | null
      authorized_at: number
    }
  >()
  for (const ids of chunked(userIds)) {
    const rows = await db
      .selectFrom('rollout_members')
      .select(['rollout_id', 'user_id', 'state', 'missing_scopes', 'app_id', 'reason', 'authorized_at'])
      .where('user_id', 'in', ids)
      .where('rollout_id', 'in', rolloutIds)
      .execute()
    for (const row of rows) before.set(`${row.rollout_id}:${row.user_id}`, row)
  }

  const members: Array<Insertable<RolloutMemberTable>> = []
  // Per rollout, the users whose missing triples are rewritten, and the scopes those triples can
  // hold (the rollout's required scopes and the old lists): the delete then names whole keys of
  // the (rollout_id, scope, user_id) primary key. By user alone PostgreSQL walked the rollout's
  // part of the index, 160 ms a 500-user batch at 700,000 members.
  const missingReset = new Map<number, { users: number[]; scopes: Set<string> }>()
  const missing: Array<{ rollout_id: number; scope: string; user_id: number }> = []
  const sums = new Map<string, { rolloutId: number; bucket: string; delta: number }>()
  const newly: NewlyCovered[] = []
  const required = new Map(rollouts.map((r) => [r.id, parseScopes(r.required_scopes)]))
  for (const userId of userIds) {
    const userInputs = inputs.get(userId)
    if (!userInputs) continue
    for (const rollout of rollouts) {
      const next = computeMembership({ ...userInputs, required: required.get(rollout.id)! })
      const old = before.get(`${rollout.id}:${userId}`)
      const oldMissing = old ? parseScopes(old.missing_scopes) : []
      const unchanged =
        old &&
        old.state === next.state &&
        old.reason === next.reason &&
        old.app_id === next.appId &&
        old.authorized_at === next.authorizedAt &&
        formatScopes(oldMissing) === formatScopes(next.missing)
      if (unchanged) continue
      if (next.state === 'covered' && old?.state !== 'covered') newly.push({ userId, rolloutId: rollout.id })

      const add = (bucket: string, delta: number) => {
        const key = `${rollout.id}\u0000${bucket}`
        const sum = sums.get(key)
        if (sum) sum.delta += delta
        else sums.set(key, { rolloutId: rollout.id, bucket, delta })
      }
      if (old) for (const b of memberBuckets({ state: old.state, missing: oldMissing, appId: old.app_id })) add(b, -1)
      for (const b of memberBuckets(next)) add(b, 1)

      members.push({
        rollout_id: rollout.id,
        user_id: userId,
        app_id: next.appId,
        state: next.state,
        needs_action: next.state === 'covered' ? 0 : 1,
        missing_scopes: formatScopes(next.missing),
        reason: next.reason,
        authorized_at: next.authorizedAt,
      })
      // The pair's triples are rewritten: the old ones go, the new list goes in.
      if (oldMissing.length) {
        const reset = missingReset.get(rollout.id) ?? { users: [], scopes: new Set(required.get(rollout.id)) }
        reset.users.push(userId)
        for (const scope of oldMissing) reset.scopes.add(scope)
        missingReset.set(rollout.id, reset)
      }
      for (const scope of next.missing) missing.push({ rollout_id: rollout.id, scope, user_id: userId })
    }
  }

  await insertRows(
    db,
    'rollout_members',
    members,
    `on conflict (rollout_id, user_id) do update set app_id = excluded.app_id, state = excluded.state,
      needs_action = excluded.needs_action, missing_scopes = excluded.missing_scopes,
      reason = excluded.reason, authorized_at = excluded.authorized_at`,
  )
  for (const [rolloutId, { users, scopes }] of missingReset)
    for (const ids of chunked(users))
      await db
        .deleteFrom('rollout_member_missing')
        .where('rollout_id', '=', rolloutId)
        .where('scope', 'in', [...scopes])
        .where('user_id', 'in', ids)
        .execute()
  await insertRows(db, 'rollout_member_missing', missing, 'on conflict do nothing')
  await applyAllCountDeltas(db, [...sums.values()])
  return newly
}

/** A slice of end users by id: `after < id <= upto` (upto null: to the end). */
export interface UserRange {
  after: number
  upto: number | null
}

/**
 * Measures the users of `range` into a rollout with set-based INSERT … SELECT statements (1M
 * users: no per-user loop). Rows that already exist win (ON CONFLICT DO NOTHING, and no missing
 * triples for a user who already has a member row): syncUserRollouts wrote them from newer state
 * while a background build was under way. Counters are not touched; see build.ts.
 */
export async function measureUsers(
  db: Trx,
  rolloutId: number,
  requiredScopes: string[],
  range: UserRange,
): Promise<void> {
  const required = parseScopes(requiredScopes.join(' '))
  const rid = sql.lit(rolloutId)

  // 1. The missing (rollout, scope, user) triples, one statement per required scope.
  for (const scope of required) {
    const select = db
      .selectFrom('end_users as u')
      .leftJoin('grants as g', (join) => join.onRef('g.id', '=', 'u.active_grant_id').on('g.status', '=', 'active'))
      .select([rid.as('rollout_id'), sql<string>`cast(${scope} as text)`.as('scope'), 'u.id as user_id'])
      .where((eb) =>
        eb.or([
          eb('g.id', 'is', null),
          eb('u.status', '=', 'needs_reconnect'),
          eb.not(
            eb.exists(
              eb
                .selectFrom('grant_scopes as gs')
                .select(sql.lit(1).as('one'))
                .whereRef('gs.grant_id', '=', 'g.id')
                .where('gs.scope', '=', scope),
            ),
          ),
        ]),
      )
      // Bounded to the chunk like the EXISTS below: with stale statistics PostgreSQL otherwise
      // materializes every member measured so far and compares each user with all of them.
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('rollout_members as em')
              .select(sql.lit(1).as('one'))
              .where('em.rollout_id', '=', rolloutId)
              .whereRef('em.user_id', '=', 'u.id')
              .where('em.user_id', '>', range.after)
              .$if(range.upto !== null, (qb) => qb.where('em.user_id', '<=', range.upto!)),
          ),
        ),
      )
    await db
      .insertInto('rollout_member_missing')
      .columns(['rollout_id', 'scope', 'user_id'])
      .expression(
        select.where('u.id', '>', range.after).$if(range.upto !== null, (qb) => qb.where('u.id', '<=', range.upto!)),
      )
      .onConflict((oc) => oc.doNothing())
      .execute()
  }

  // 2. One member row per user; missing_scopes is rebuilt from the triples above (PK lookups).
  // The range bound repeated inside EXISTS is redundant with mm.user_id = u.id, but without it
  // PostgreSQL turns each EXISTS into a hashed subplan over ALL the rollout's missing rows, so
  // every chunk gets slower as the build proceeds (5,000-user chunk: 362 ms → 60 ms with it).
  const mmRange =
    range.upto === null
      ? sql`mm.user_id > ${range.after}`
      : sql`mm.user_id > ${range.after} and mm.user_id <= ${range.upto}`
  const missingExpr = required.length
    ? sql<string>`trim(${sql.join(
        required.map(
          (scope) =>
            sql`case when exists (select 1 from rollout_member_missing mm where mm.rollout_id = ${rid} and mm.scope = ${scope} and mm.user_id = u.id and ${mmRange}) then cast(${`${scope} `} as text) else '' end`,
        ),
        sql` || `,
      )})`
    : sql<string>`''`
  const users = db
    .selectFrom('end_users as u')
    .leftJoin('grants as g', (join) => join.onRef('g.id', '=', 'u.active_grant_id').on('g.status', '=', 'active'))
    .leftJoin('oauth_apps as a', 'a.id', 'g.app_id')
    .select((eb) => [
      'u.id as user_id',
      'g.app_id as app_id',
      sql<number>`case when u.status = 'needs_reconnect' then 1 when g.id is null then 0 else 2 end`.as('kind'),
      sql<number>`case when a.status = 'retired' then 1 else 0 end`.as('retired'),
      sql<number>`case when g.scopes_source = 'unknown' then 1 else 0 end`.as('unknown'),
      missingExpr.as('missing'),
      eb.fn
        .coalesce(
          'g.created_at',
          eb
            .selectFrom('grants as lg')
            .select((e) => e.fn.max('lg.created_at').as('m'))
            .whereRef('lg.user_id', '=', 'u.id'),
          'u.created_at',
        )
        .as('authorized_at'),
    ])
  const base = users
    .where('u.id', '>', range.after)
    .$if(range.upto !== null, (qb) => qb.where('u.id', '<=', range.upto!))
    .as('x')
  await db
    .insertInto('rollout_members')
    .columns(['rollout_id', 'user_id', 'app_id', 'state', 'needs_action', 'missing_scopes', 'reason', 'authorized_at'])
    .expression(
      db
        .selectFrom(base)
        .select([
          rid.as('rollout_id'),
          'x.user_id',
          'x.app_id',
          sql<MemberState>`case when x.kind < 2 then 'reconnect' when x.retired = 1 or x.missing <> '' then 'lacking' else 'covered' end`.as(
            'state',
          ),
          sql<number>`case when x.kind = 2 and x.retired = 0 and x.missing = '' then 0 else 1 end`.as('needs_action'),
          'x.missing',
          sql<MemberReason | null>`case when x.kind = 0 then 'no_active_grant' when x.kind = 1 then 'needs_reconnect' when x.retired = 1 then 'app_retired' when x.unknown = 1 and x.missing <> '' then 'scopes_unknown' when x.missing <> '' then 'missing_scopes' else null end`.as(
            'reason',
          ),
          'x.authorized_at',
        ])
        // A WHERE before ON CONFLICT keeps SQLite's parser from reading it as a join constraint.
        .where('x.user_id', '>', range.after),
    )
    .onConflict((oc) => oc.doNothing())
    .execute()
}

/**
 * The one-shot build: every end user at once, then the counters. Kept as the reference the chunked
 * background build (build.ts) is tested against; at 1M users it holds one transaction for a minute.
 */
export async function buildRolloutMembership(db: Trx, rolloutId: number, requiredScopes: string[]): Promise<void> {
  await measureUsers(db, rolloutId, requiredScopes, { after: 0, upto: null })
  await recountRollout(db, rolloutId)
}

/**
 * Rebuilds a rollout's counters exactly from rollout_members / rollout_member_missing and returns
 * them. Used at creation, and by reports to cross-check the delta-maintained counters.
 */
export async function recountRollout(db: Trx, rolloutId: number): Promise<Map<string, number>> {
  const counts = await exactCounts(db, rolloutId)
  await db.deleteFrom('rollout_counts').where('rollout_id', '=', rolloutId).execute()
  const rows = [...counts].map(([bucket, count]) => ({ rollout_id: rolloutId, bucket, count }))
  for (let i = 0; i < rows.length; i += 200)
    await db
      .insertInto('rollout_counts')
      .values(rows.slice(i, i + 200))
      .execute()
  return counts
}

/** The counters as they should be, computed from the member rows (no writes). */
export async function exactCounts(db: Db, rolloutId: number): Promise<Map<string, number>> {
  const rollout = await db
    .selectFrom('rollouts')
    .select('required_scopes')
    .where('id', '=', rolloutId)
    .executeTakeFirstOrThrow()
  const counts = new Map<string, number>([
    ['members', 0],
    ['covered', 0],
    ['lacking', 0],
    ['reconnect', 0],
  ])
  for (const scope of parseScopes(rollout.required_scopes)) counts.set(`missing:${scope}`, 0)
  const byState = await db
    .selectFrom('rollout_members')
    .select(['state', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rolloutId)
    .groupBy('state')
    .execute()
  for (const row of byState) {
    counts.set(row.state, Number(row.n))
    counts.set('members', counts.get('members')! + Number(row.n))
  }
  const byApp = await db
    .selectFrom('rollout_members')
    .select(['app_id', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rolloutId)
    .where('app_id', 'is not', null)
    .groupBy('app_id')
    .execute()
  for (const row of byApp) counts.set(`app:${row.app_id}`, Number(row.n))
  const byScope = await db
    .selectFrom('rollout_member_missing')
    .select(['scope', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rolloutId)
    .groupBy('scope')
    .execute()
  for (const row of byScope) counts.set(`missing:${row.scope}`, Number(row.n))
  return counts
}

/** The delta-maintained counters as stored. */
export async function storedCounts(db: Db, rolloutId: number): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('rollout_counts')
    .select(['bucket', 'count'])
    .where('rollout_id', '=', rolloutId)
    .execute()
  return new Map(rows.map((r) => [r.bucket, Number(r.count)]))
}

/**
 * After an app is retired (or, exceptionally, reactivated): moves its users between covered and
 * lacking in every active rollout, set-based, adjusting the counters by the same deltas.
 * A retired app's users must move to a live app even if they hold every scope.
 */
export async function syncUsersOnApp(db: Trx, appId: number): Promise<void> {
  const app = await db.selectFrom('oauth_apps').select('status').where('id', '=', appId).executeTakeFirst()
  if (!app) return
  const rollouts = await db.selectFrom('rollouts').select('id').where('status', '=', 'active').orderBy('id').execute()
  for (const { id } of rollouts) {
    const members = db
      .selectFrom('rollout_members')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('rollout_id', '=', id)
      .where('app_id', '=', appId)
    const scoped = db.updateTable('rollout_members').where('rollout_id', '=', id).where('app_id', '=', appId)
    if (app.status === 'retired') {
      const n = Number((await members.where('state', '=', 'covered').executeTakeFirst())?.n ?? 0)
      await scoped
        .set({ state: 'lacking', needs_action: 1, reason: 'app_retired' })
        .where('state', '=', 'covered')
        .execute()
      await scoped.set({ reason: 'app_retired' }).where('state', '=', 'lacking').execute()
      await applyCountDeltas(
        db,
        id,
        new Map([
          ['covered', -n],
          ['lacking', n],
        ]),
      )
    } else {
      const row = await members.where('reason', '=', 'app_retired').where('missing_scopes', '=', '').executeTakeFirst()
      const n = Number(row?.n ?? 0)
      await scoped
        .set({ state: 'covered', needs_action: 0, reason: null })
        .where('reason', '=', 'app_retired')
        .where('missing_scopes', '=', '')
        .execute()
      await scoped.set({ reason: 'missing_scopes' }).where('reason', '=', 'app_retired').execute()
      await applyCountDeltas(
        db,
        id,
        new Map([
          ['covered', n],
          ['lacking', -n],
        ]),
      )
    }
  }
}
