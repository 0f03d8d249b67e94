// Rollout membership: one row per (rollout, end user) comparing the user's active grant with the
// rollout's required scopes, plus rollout_counts kept in step. (Contract; implemented by the
// rollouts module.)
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'

/**
 * Recomputes this user's membership in every active rollout and adjusts the counters. Call it
 * inside the transaction that changed the user's active grant, its scopes, its status or the
 * user's status.
 */
export async function syncUserRollouts(_db: Kysely<Database>, _userId: number, _now: number): Promise<void> {}
