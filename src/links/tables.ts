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
}

export interface LinkTables {
  reauth_links: ReauthLinkTable
}
