// Table types of rollouts, their members and counters (migrations/0002_rollouts.ts, 0004).
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export interface RolloutTable {
  id: Generated<number>
  name: string
  /** Target app users should end up on. */
  app_id: number
  required_scopes: string
  status: Generated<'active' | 'archived'>
  created_by: string
  created_at: Millis
  archived_at: Millis | null
  /** 'building' while the background builder measures users (src/rollouts/build.ts). */
  build_status: Generated<'building' | 'ready'>
  /** Last end_users.id measured by the builder (keyset). */
  build_cursor: Generated<number>
  /** Users measured so far, and the user count when the build started (progress notice). */
  build_done: Generated<number>
  build_total: Generated<number>
  /** Lease: the builder holding it, and until when (renewed with every chunk). */
  build_lock_owner: string | null
  build_lock_until: Millis | null
  /** When the build finished (counters recounted exactly). */
  built_at: Millis | null
}

export type MemberState = 'covered' | 'lacking' | 'reconnect'
export type MemberReason = 'missing_scopes' | 'scopes_unknown' | 'app_retired' | 'no_active_grant' | 'needs_reconnect'

export interface RolloutMemberTable {
  rollout_id: number
  user_id: number
  /** App of the user's active grant, null when none. */
  app_id: number | null
  state: MemberState
  /** 1 when state is lacking or reconnect: the list the operator works through. */
  needs_action: number
  missing_scopes: Generated<string>
  reason: MemberReason | null
  /** The user's last authorization (active grant, else latest grant, else user creation). */
  authorized_at: Millis
}

export interface RolloutMemberMissingTable {
  rollout_id: number
  scope: string
  user_id: number
}

export interface RolloutCountTable {
  rollout_id: number
  bucket: string
  count: Generated<number>
}

export interface RolloutTables {
  rollouts: RolloutTable
  rollout_members: RolloutMemberTable
  rollout_member_missing: RolloutMemberMissingTable
  rollout_counts: RolloutCountTable
}
