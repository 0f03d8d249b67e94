// Rollouts: an operator's campaign to bring every end user onto a target app's scope set.
// Creation inserts the rollout 'building' and returns; build.ts measures every user in short
// chunks in the background (set-based, see membership.ts). Archived rollouts are kept for the
// record but no longer maintained.
import type { Selectable } from 'kysely'
import { recordAudit } from '../audit/events.js'
import { DomainError } from '../errors.js'
import type { Db } from '../db/index.js'
import { formatScopes, missingScopes, parseScopes } from '../scopes.js'
import { type BuildOptions, type BuildStats, runRolloutBuild } from './build.js'
import type { RolloutTable } from './tables.js'

export type RolloutRow = Selectable<RolloutTable>

export interface RolloutListItem extends RolloutRow {
  app_key: string
  app_name: string
  members: number
  covered: number
}

export interface NewRollout {
  name: string
  appId: number
  scopes: string[]
}

/** A rollout form that does not validate; `field` names the input at fault. */
function invalid(field: 'name' | 'app' | 'scopes', message: string): DomainError<'rollout.invalid'> {
  return new DomainError('rollout.invalid', message, { field })
}

export const MAX_NAME_LENGTH = 120

/** Checks the form against the database: an active target app and a non-empty subset of its scopes. */
export async function validateNewRollout(
  db: Db,
  input: NewRollout,
): Promise<{ name: string; appId: number; scopes: string[] }> {
  const name = input.name.trim()
  if (!name) throw invalid('name', 'Give the rollout a name.')
  if (name.length > MAX_NAME_LENGTH) throw invalid('name', `The name may be at most ${MAX_NAME_LENGTH} characters.`)
  if (!Number.isSafeInteger(input.appId) || input.appId <= 0) throw invalid('app', 'Choose the target app.')
  const app = await db
    .selectFrom('oauth_apps')
    .select(['id', 'scopes', 'status'])
    .where('id', '=', input.appId)
    .executeTakeFirst()
  if (!app) throw invalid('app', 'The chosen target app does not exist.')
  if (app.status !== 'active') throw invalid('app', 'The chosen target app is retired; choose an active app.')
  const scopes = parseScopes(input.scopes.join(' '))
  if (scopes.length === 0) throw invalid('scopes', 'Choose at least one required scope.')
  const foreign = missingScopes(scopes, parseScopes(app.scopes))
  if (foreign.length)
    throw invalid(
      'scopes',
      `The target app does not request ${foreign.join(', ')}; required scopes must be a subset of its scopes.`,
    )
  return { name, appId: app.id, scopes }
}

/**
 * Creates the rollout row in state 'building' and returns at once; its membership is measured in
 * the background by build.ts (kicked by the caller, resumed on app start). One short transaction.
 */
export async function startRollout(db: Db, input: NewRollout, actor: string, now: number): Promise<number> {
  const valid = await validateNewRollout(db, input)
  // The progress notice's "of M"; users created later are measured too (done may pass it).
  const total = await db
    .selectFrom('end_users')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('rollouts')
      .values({
        name: valid.name,
        app_id: valid.appId,
        required_scopes: formatScopes(valid.scopes),
        created_by: actor,
        created_at: now,
        archived_at: null,
        build_status: 'building',
        build_cursor: 0,
        build_done: 0,
        build_total: Number(total.n),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'rollout.created',
      actor,
      appId: valid.appId,
      rolloutId: row.id,
      details: { name: valid.name, required_scopes: valid.scopes },
    })
    return row.id
  })
}

/**
 * Creates a rollout and builds it to completion in this call (chunked, like the background
 * builder). For CLIs, the benchmark and tests; the dashboard uses startRollout and returns at once.
 * Waits while another builder holds the lease (e.g. another instance's background runner).
 */
export async function createRollout(
  db: Db,
  input: NewRollout,
  actor: string,
  now: number,
  build: BuildOptions = {},
): Promise<number> {
  const id = await startRollout(db, input, actor, now)
  await buildUntilReady(db, id, build)
  return id
}

/** Runs the build until the rollout is ready; polls while another builder holds the lease. */
export async function buildUntilReady(db: Db, rolloutId: number, build: BuildOptions = {}): Promise<BuildStats> {
  for (;;) {
    const stats = await runRolloutBuild(db, rolloutId, build)
    if (stats.outcome === 'ready' || stats.outcome === 'inactive' || stats.outcome === 'stopped') return stats
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Archives an active rollout; false when it was not active. */
export async function archiveRollout(db: Db, rolloutId: number, actor: string, now: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('rollouts')
      .set({ status: 'archived', archived_at: now })
      .where('id', '=', rolloutId)
      .where('status', '=', 'active')
      .executeTakeFirst()
    if (Number(result.numUpdatedRows) === 0) return false
    await recordAudit(trx, now, { type: 'rollout.archived', actor, rolloutId })
    return true
  })
}

/**
 * Brings an archived rollout back. Its figures stopped being kept up to date when it was archived,
 * so its membership is dropped and measured again by the background build (like a new rollout);
 * false when it was not archived or its target app has been retired since.
 */
export async function unarchiveRollout(db: Db, rolloutId: number, actor: string, now: number): Promise<boolean> {
  const total = await db
    .selectFrom('end_users')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirstOrThrow()
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('rollouts')
      .innerJoin('oauth_apps', 'oauth_apps.id', 'rollouts.app_id')
      .select(['rollouts.status', 'oauth_apps.status as app_status'])
      .where('rollouts.id', '=', rolloutId)
      .executeTakeFirst()
    if (row?.status !== 'archived') return false
    if (row.app_status !== 'active')
      throw new DomainError('rollout.invalid', 'Its target app is retired: create a rollout for an active app.', {
        field: 'app',
      })
    await trx.deleteFrom('rollout_member_missing').where('rollout_id', '=', rolloutId).execute()
    await trx.deleteFrom('rollout_members').where('rollout_id', '=', rolloutId).execute()
    await trx.deleteFrom('rollout_counts').where('rollout_id', '=', rolloutId).execute()
    await trx
      .updateTable('rollouts')
      .set({
        status: 'active',
        archived_at: null,
        build_status: 'building',
        build_cursor: 0,
        build_done: 0,
        build_total: Number(total.n),
        build_lock_owner: null,
        build_lock_until: null,
      })
      .where('id', '=', rolloutId)
      .execute()
    await recordAudit(trx, now, { type: 'rollout.unarchived', actor, rolloutId })
    return true
  })
}

/** An active rollout with the same target app and exactly the same required scopes, if any. */
export async function findSameActiveRollout(
  db: Db,
  input: Pick<NewRollout, 'appId' | 'scopes'>,
): Promise<{ id: number; name: string } | undefined> {
  if (!Number.isSafeInteger(input.appId) || input.appId <= 0) return undefined
  return db
    .selectFrom('rollouts')
    .select(['id', 'name'])
    .where('status', '=', 'active')
    .where('app_id', '=', input.appId)
    .where('required_scopes', '=', formatScopes(parseScopes(input.scopes.join(' '))))
    .orderBy('id')
    .executeTakeFirst()
}

export async function findRollout(
  db: Db,
  rolloutId: number,
): Promise<(RolloutRow & { app_key: string; app_name: string }) | undefined> {
  return db
    .selectFrom('rollouts')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'rollouts.app_id')
    .selectAll('rollouts')
    .select(['oauth_apps.key as app_key', 'oauth_apps.name as app_name'])
    .where('rollouts.id', '=', rolloutId)
    .executeTakeFirst()
}

/** Every rollout, newest first, with its members/covered counters (no member scan). */
export async function listRollouts(db: Db): Promise<RolloutListItem[]> {
  const rows = await db
    .selectFrom('rollouts')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'rollouts.app_id')
    .selectAll('rollouts')
    .select(['oauth_apps.key as app_key', 'oauth_apps.name as app_name'])
    .orderBy('rollouts.id', 'desc')
    .execute()
  if (rows.length === 0) return []
  const counts = await db
    .selectFrom('rollout_counts')
    .select(['rollout_id', 'bucket', 'count'])
    .where(
      'rollout_id',
      'in',
      rows.map((r) => r.id),
    )
    .where('bucket', 'in', ['members', 'covered'])
    .execute()
  const get = (id: number, bucket: string) =>
    Number(counts.find((c) => c.rollout_id === id && c.bucket === bucket)?.count ?? 0)
  return rows.map((r) => ({ ...r, members: get(r.id, 'members'), covered: get(r.id, 'covered') }))
}

/** Build progress of every active rollout (users measured so far, users to measure): a metric. */
export async function rolloutBuildProgress(
  db: Db,
): Promise<Array<{ id: number; building: boolean; done: number; total: number }>> {
  const rows = await db
    .selectFrom('rollouts')
    .select(['id', 'build_status', 'build_done', 'build_total'])
    .where('status', '=', 'active')
    .execute()
  return rows.map((r) => ({
    id: r.id,
    building: r.build_status === 'building',
    done: Number(r.build_done),
    total: Math.max(Number(r.build_total), Number(r.build_done)),
  }))
}
