// The proactive half of bringing people over (feature gates are the reactive half): a connected
// person who lacks an active rollout's scopes is asked on Scope Ledger's own pages, with the same
// one-click path as an emailed link (src/README.md, "Email").
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { parseScopes } from '../scopes.js'

export interface RolloutAsking {
  rolloutId: number
  name: string
  missing: string[]
}

/** Active rollouts this person is a lacking member of (not those they dismissed), oldest first. */
export async function rolloutsAsking(
  db: Kysely<Database>,
  userId: number,
  dismissed: number[] = [],
): Promise<RolloutAsking[]> {
  let q = db
    .selectFrom('rollout_members as m')
    .innerJoin('rollouts as r', 'r.id', 'm.rollout_id')
    .select(['r.id', 'r.name', 'm.missing_scopes'])
    .where('m.user_id', '=', userId)
    .where('m.state', '=', 'lacking')
    .where('r.status', '=', 'active')
  if (dismissed.length > 0) q = q.where('r.id', 'not in', dismissed)
  const rows = await q.orderBy('r.id').limit(5).execute()
  return rows.map((r) => ({ rolloutId: r.id, name: r.name, missing: parseScopes(r.missing_scopes) }))
}
