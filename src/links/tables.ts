// Table types of reauthorization links (migrations/0002_rollouts.ts). Owned by the links module.
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export interface ReauthLinkTable {
  id: Generated<number>
  rollout_id: number
  user_id: number
  nonce: string
  issued_by: string
  issued_at: Millis
  expires_at: Millis
  used_at: Millis | null
  used_grant_id: number | null
  /** migrations/0010_mail.ts: what happened to the link, for honest states and the funnel. */
  emailed_at: Millis | null
  opened_at: Millis | null
  continued_at: Millis | null
  /** declined | identity_mismatch: the last attempt through this link that did not complete. */
  outcome: 'declined' | 'identity_mismatch' | null
  outcome_at: Millis | null
  revoked_at: Millis | null
  revoked_by: string | null
}

export interface LinkTables {
  reauth_links: ReauthLinkTable
}
