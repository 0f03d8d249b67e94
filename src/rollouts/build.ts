// Background build of a new rollout's membership. Measuring 1M users in one transaction takes
// about a minute: on SQLite (one connection) every other request waits that long, and on
// PostgreSQL (READ COMMITTED) a grant committed meanwhile could miss the new rollout. So the
// rollout row is created 'building' and this builder measures users in chunks by end_users.id
// (keyset: id > build_cursor ORDER BY id LIMIT chunk), each chunk one SHORT transaction that
// also advances build_cursor, yielding to the event loop between chunks.
//
// Correctness while building:
//  - syncUserRollouts maintains every ACTIVE rollout, building ones included, so a user who
//    reconnects mid-build gets a fresh row whether or not their chunk was measured; the chunk
//    insert skips rows that exist (ON CONFLICT DO NOTHING): the synced row is newer.
//  - users created after the build started have higher ids, so the keyset walk reaches them;
//    the finishing transaction measures whatever appeared after the last chunk.
//  - counters move by per-chunk deltas (exact on SQLite, provisional on PostgreSQL); the finish
//    recounts them exactly and sets build_status 'ready' in the same transaction.
//  - a lease on the rollout row (build_lock_owner/until, one conditional UPDATE, renewed in every
//    chunk's transaction, as src/grants/access.ts does for refresh) keeps two app instances from
//    building the same chunk; a builder whose lease was taken over writes nothing more.
import { refreshPlannerStatistics } from '../db/dialect.js'
import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { parseScopes } from '../scopes.js'
import { type UserRange, applyCountDeltas, measureUsers, recountRollout } from './membership.js'

type Db = Kysely<Database>
type Trx = Transaction<Database>

/** Users per chunk: one chunk is one write transaction (1M-user bench: ~190 ms each, 273 ms at most). */
export const DEFAULT_CHUNK_SIZE = 5_000
/** How long a lease holds without renewal: far longer than one chunk. */
export const BUILD_LEASE_MS = 60_000

export interface BuildOptions {
  /** Lease owner id; one is made up when absent. */
  owner?: string
  /** Epoch ms (the app's clock); Date.now when absent. */
  now?: () => number
  chunkSize?: number
  leaseMs?: number
  /** Checked before each chunk: true releases the lease and stops (app shutdown). */
  shouldStop?: () => boolean
  /** Called after each committed chunk (tests interleave work here). */
  afterChunk?: (progress: { rolloutId: number; cursor: number; done: number }) => unknown
}

/**
 * ready    – every user measured, counters exact, build_status 'ready' (also: it already was);
 * busy     – another builder holds a live lease;
 * lost     – our lease was taken over mid-build (we wrote nothing after losing it);
 * stopped  – shouldStop said so; resumable from build_cursor;
 * inactive – the rollout is gone or archived.
 */
export type BuildOutcome = 'ready' | 'busy' | 'lost' | 'stopped' | 'inactive'

export interface BuildStats {
  outcome: BuildOutcome
  chunks: number
  users: number
  /** Longest single chunk transaction and the finishing transaction, in ms: how long others waited at most. */
  maxChunkMs: number
  finishMs: number
  totalMs: number
}

export function newBuildOwner(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
}

/**
 * True when a lease owner (`host:pid:nonce`, newBuildOwner) is a previous run of this host that is
 * gone: the same host name and either no process with that pid (signal 0 answers ESRCH), or our
 * own pid with another nonce (a restarted container is pid 1 again). A pid reused by an unrelated
 * process, or another host, is not: that lease runs out on its own (BUILD_LEASE_MS).
 */
export function isDeadLocalOwner(leaseOwner: string, ownOwner: string): boolean {
  const [host, pidText, nonce] = leaseOwner.split(':')
  const [ownHost, ownPid, ownNonce] = ownOwner.split(':')
  if (!host || host !== ownHost || !pidText || !/^\d+$/.test(pidText)) return false
  if (pidText === ownPid) return nonce !== ownNonce
  try {
    process.kill(Number(pidText), 0)
    return false
  } catch (err) {
    return (err as { code?: string }).code === 'ESRCH'
  }
}

/**
 * On start: releases the build leases still held by this host's dead previous run (kill -9, a
 * crash, a restart), so their builds resume at once instead of after BUILD_LEASE_MS. Conditional
 * on the owner, so a lease renewed meanwhile by a live builder is left alone. Returns the ids.
 */
export async function releaseDeadLocalLeases(db: Db, ownOwner: string, now: number): Promise<number[]> {
  const held = await db
    .selectFrom('rollouts')
    .select(['id', 'build_lock_owner'])
    .where('status', '=', 'active')
    .where('build_status', '=', 'building')
    .where('build_lock_owner', 'is not', null)
    .where('build_lock_until', '>=', now)
    .execute()
  const released: number[] = []
  for (const row of held) {
    if (!row.build_lock_owner || !isDeadLocalOwner(row.build_lock_owner, ownOwner)) continue
    const result = await db
      .updateTable('rollouts')
      .set({ build_lock_owner: null, build_lock_until: null })
      .where('id', '=', row.id)
      .where('build_lock_owner', '=', row.build_lock_owner)
      .executeTakeFirst()
    if (Number(result.numUpdatedRows) === 1) released.push(row.id)
  }
  return released
}

/** Takes the build lease when free, expired or already ours (one conditional UPDATE). */
export async function takeBuildLease(
  db: Db,
  rolloutId: number,
  owner: string,
  now: number,
  leaseMs = BUILD_LEASE_MS,
): Promise<boolean> {
  const result = await db
    .updateTable('rollouts')
    .set({ build_lock_owner: owner, build_lock_until: now + leaseMs })
    .where('id', '=', rolloutId)
    .where('status', '=', 'active')
    .where('build_status', '=', 'building')
    .where((eb) =>
      eb.or([eb('build_lock_until', 'is', null), eb('build_lock_until', '<', now), eb('build_lock_owner', '=', owner)]),
    )
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

export async function releaseBuildLease(db: Db, rolloutId: number, owner: string): Promise<void> {
  await db
    .updateTable('rollouts')
    .set({ build_lock_owner: null, build_lock_until: null })
    .where('id', '=', rolloutId)
    .where('build_lock_owner', '=', owner)
    .execute()
}

/** Renews our lease inside a chunk's transaction; false when another builder took it (then write nothing). */
async function renewLease(trx: Trx, rolloutId: number, owner: string, now: number, leaseMs: number): Promise<boolean> {
  const result = await trx
    .updateTable('rollouts')
    .set({ build_lock_until: now + leaseMs })
    .where('id', '=', rolloutId)
    .where('build_lock_owner', '=', owner)
    .where('status', '=', 'active')
    .where('build_status', '=', 'building')
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/** Counter buckets of the member rows in a user-id range (PK range reads, per scope for the missing triples). */
async function rangeCounts(
  db: Db,
  rolloutId: number,
  required: string[],
  range: UserRange,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  const add = (bucket: string, n: number) => counts.set(bucket, (counts.get(bucket) ?? 0) + n)
  const byStateApp = await db
    .selectFrom('rollout_members')
    .select(['state', 'app_id', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '>', range.after)
    .$if(range.upto !== null, (qb) => qb.where('user_id', '<=', range.upto!))
    .groupBy(['state', 'app_id'])
    .execute()
  for (const row of byStateApp) {
    const n = Number(row.n)
    add('members', n)
    add(row.state, n)
    if (row.app_id !== null) add(`app:${row.app_id}`, n)
  }
  for (const scope of required) {
    const row = await db
      .selectFrom('rollout_member_missing')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('rollout_id', '=', rolloutId)
      .where('scope', '=', scope)
      .where('user_id', '>', range.after)
      .$if(range.upto !== null, (qb) => qb.where('user_id', '<=', range.upto!))
      .executeTakeFirst()
    add(`missing:${scope}`, Number(row?.n ?? 0))
  }
  return counts
}

/** Measures a range and moves the counters by what it added (rows synced earlier are not counted twice). */
async function measureAndCount(trx: Trx, rolloutId: number, required: string[], range: UserRange): Promise<void> {
  const before = await rangeCounts(trx, rolloutId, required, range)
  await measureUsers(trx, rolloutId, required, range)
  const after = await rangeCounts(trx, rolloutId, required, range)
  const deltas = new Map<string, number>()
  for (const bucket of new Set([...before.keys(), ...after.keys()]))
    deltas.set(bucket, (after.get(bucket) ?? 0) - (before.get(bucket) ?? 0))
  await applyCountDeltas(trx, rolloutId, deltas)
}

/** The next slice of users past `after`: how many and the last id (keyset on the primary key). */
async function nextSlice(trx: Trx, after: number, limit: number | null): Promise<{ n: number; last: number | null }> {
  let ids = trx.selectFrom('end_users').select('id').where('id', '>', after).orderBy('id')
  if (limit !== null) ids = ids.limit(limit)
  const row = await trx
    .selectFrom(ids.as('s'))
    .select((eb) => [eb.fn.countAll().as('n'), eb.fn.max('s.id').as('last')])
    .executeTakeFirstOrThrow()
  return { n: Number(row.n), last: row.last === null || row.last === undefined ? null : Number(row.last) }
}

/**
 * One chunk in one transaction: renew the lease, measure the next `chunkSize` users past the
 * cursor, adjust the counters, advance the cursor. 'end' when no user is left past the cursor.
 */
export async function buildChunk(
  db: Db,
  rolloutId: number,
  owner: string,
  now: number,
  chunkSize = DEFAULT_CHUNK_SIZE,
  leaseMs = BUILD_LEASE_MS,
): Promise<'measured' | 'end' | 'lost'> {
  return db.transaction().execute(async (trx) => {
    if (!(await renewLease(trx, rolloutId, owner, now, leaseMs))) return 'lost'
    const rollout = await trx
      .selectFrom('rollouts')
      .select(['build_cursor', 'required_scopes'])
      .where('id', '=', rolloutId)
      .executeTakeFirstOrThrow()
    const cursor = Number(rollout.build_cursor)
    const slice = await nextSlice(trx, cursor, chunkSize)
    if (slice.n === 0 || slice.last === null) return 'end'
    await measureAndCount(trx, rolloutId, parseScopes(rollout.required_scopes), { after: cursor, upto: slice.last })
    await trx
      .updateTable('rollouts')
      .set((eb) => ({ build_cursor: slice.last!, build_done: eb('build_done', '+', slice.n) }))
      .where('id', '=', rolloutId)
      .execute()
    return 'measured'
  })
}

/**
 * The finishing transaction: measure any user who appeared after the last chunk, recount the
 * counters exactly from the member rows, and mark the rollout ready. False when the lease was lost.
 */
export async function finishBuild(
  db: Db,
  rolloutId: number,
  owner: string,
  now: number,
  leaseMs = BUILD_LEASE_MS,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    if (!(await renewLease(trx, rolloutId, owner, now, leaseMs))) return false
    const rollout = await trx
      .selectFrom('rollouts')
      .select(['build_cursor', 'required_scopes'])
      .where('id', '=', rolloutId)
      .executeTakeFirstOrThrow()
    const cursor = Number(rollout.build_cursor)
    const rest = await nextSlice(trx, cursor, null)
    if (rest.n > 0)
      await measureUsers(trx, rolloutId, parseScopes(rollout.required_scopes), { after: cursor, upto: null })
    await recountRollout(trx, rolloutId)
    await trx
      .updateTable('rollouts')
      .set((eb) => ({
        build_status: 'ready',
        build_cursor: rest.last ?? cursor,
        build_done: eb('build_done', '+', rest.n),
        build_lock_owner: null,
        build_lock_until: null,
        built_at: now,
      }))
      .where('id', '=', rolloutId)
      .execute()
    return true
  })
}

/** A failed renewal: archived (or deleted) meanwhile, or another builder took the lease over. */
async function lostOrInactive(db: Db, rolloutId: number): Promise<BuildOutcome> {
  const row = await db.selectFrom('rollouts').select('status').where('id', '=', rolloutId).executeTakeFirst()
  return row?.status === 'active' ? 'lost' : 'inactive'
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Builds a rollout to completion (or until stopped / the lease is lost), resuming from its
 * build_cursor: after a crash or restart nothing is measured twice and nothing is skipped.
 */
export async function runRolloutBuild(db: Db, rolloutId: number, options: BuildOptions = {}): Promise<BuildStats> {
  const owner = options.owner ?? newBuildOwner()
  const now = options.now ?? Date.now
  const chunkSize = Math.max(1, Math.floor(options.chunkSize ?? DEFAULT_CHUNK_SIZE))
  const leaseMs = options.leaseMs ?? BUILD_LEASE_MS
  const stats: BuildStats = { outcome: 'ready', chunks: 0, users: 0, maxChunkMs: 0, finishMs: 0, totalMs: 0 }
  const started = performance.now()
  const done = (outcome: BuildOutcome) => ({ ...stats, outcome, totalMs: performance.now() - started })

  if (!(await takeBuildLease(db, rolloutId, owner, now(), leaseMs))) {
    const row = await db
      .selectFrom('rollouts')
      .select(['status', 'build_status'])
      .where('id', '=', rolloutId)
      .executeTakeFirst()
    if (row?.status !== 'active') return done('inactive')
    return done(row.build_status === 'ready' ? 'ready' : 'busy')
  }
  try {
    for (;;) {
      if (options.shouldStop?.()) {
        await releaseBuildLease(db, rolloutId, owner)
        return done('stopped')
      }
      const t0 = performance.now()
      const step = await buildChunk(db, rolloutId, owner, now(), chunkSize, leaseMs)
      if (step === 'lost') return done(await lostOrInactive(db, rolloutId))
      if (step === 'end') {
        const finished = await finishBuild(db, rolloutId, owner, now(), leaseMs)
        // A row per end user was just written: let PostgreSQL's planner see them.
        if (finished)
          await refreshPlannerStatistics(db, ['rollout_members', 'rollout_member_missing', 'rollout_counts'])
        stats.finishMs = performance.now() - t0
        return done(finished ? 'ready' : await lostOrInactive(db, rolloutId))
      }
      stats.maxChunkMs = Math.max(stats.maxChunkMs, performance.now() - t0)
      stats.chunks++
      const progress = await db
        .selectFrom('rollouts')
        .select(['build_cursor', 'build_done'])
        .where('id', '=', rolloutId)
        .executeTakeFirstOrThrow()
      stats.users = Number(progress.build_done)
      await options.afterChunk?.({
        rolloutId,
        cursor: Number(progress.build_cursor),
        done: Number(progress.build_done),
      })
      // Let queued requests (OAuth callbacks, dashboard pages) have the connection between chunks.
      await yieldToEventLoop()
    }
  } catch (err) {
    await releaseBuildLease(db, rolloutId, owner).catch(() => {})
    throw err
  }
}
