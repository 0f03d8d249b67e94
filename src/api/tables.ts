// Table types of the integrator's API: keys and connect sessions (migrations/0008_api.ts).
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export interface ApiKeyTable {
  id: Generated<number>
  name: string
  /** The key's first characters, to tell keys apart on the dashboard. */
  prefix: string
  /** SHA-256 (hex) of the key; the key itself is shown once and never stored. */
  key_hash: string
  /** Space-separated permissions (read tokens links connect). */
  permissions: string
  created_by: string
  created_at: Millis
  last_used_at: Millis | null
  revoked_at: Millis | null
}

export interface ConnectSessionTable {
  id: Generated<number>
  /** SHA-256 (hex) of the one-time token in the URL. */
  token_hash: string
  external_user_id: string
  return_to: string
  api_key_id: number
  created_at: Millis
  expires_at: Millis
  used_at: Millis | null
  /** The end user the session connected. */
  user_id: number | null
}

export interface ApiTables {
  api_keys: ApiKeyTable
  connect_sessions: ConnectSessionTable
}
