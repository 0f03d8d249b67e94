// Table types for Kysely. The core ledger's tables are declared here; each other module declares
// its own beside its code (admin, rollouts, links, reports), and this file joins them.
import type { Generated } from 'kysely'
import type { AdminTables } from '../admin/tables.js'
import type { ImportTables } from '../imports/tables.js'
import type { ApiTables } from '../api/tables.js'
import type { LinkTables } from '../links/tables.js'
import type { MailTables } from '../mail/tables.js'
import type { ReportTables } from '../reports/tables.js'
import type { RolloutTables } from '../rollouts/tables.js'
import type { WebhookTables } from '../webhooks/tables.js'

/** Epoch milliseconds (bigint column). */
export type Millis = number

export interface OAuthAppTable {
  id: Generated<number>
  key: string
  name: string
  environment: 'playground' | 'production'
  client_id: string
  auth_base_url: string
  api_base_url: string
  /** Canonical scope string (sorted, space separated). */
  scopes: string
  status: 'active' | 'retired'
  is_current: number
  retired_at: Millis | null
  /** A retired app's successor: its users reconnect with this app (migrations/0006_answers.ts). */
  successor_app_id: number | null
  created_at: Millis
  updated_at: Millis
}

export interface EndUserTable {
  id: Generated<number>
  /** Carta's user id from /v1alpha1/user, when read_user_info was granted. */
  carta_user_id: string | null
  /** Local identity bound to a browser session, when Carta's identity is unknown. */
  local_key: string | null
  email: string | null
  name: string | null
  /** The integrator's own id for the person (set by an API connect session), unique when present. */
  external_user_id: Generated<string | null>
  active_grant_id: number | null
  /** connected | needs_reconnect (grant broken or revoked) */
  status: 'connected' | 'needs_reconnect'
  created_at: Millis
  updated_at: Millis
}

/**
 * Where a grant's scope set comes from. reported: the token response carried `scope`; assumed: it
 * did not, so the requested set was granted (RFC 6749 §5.1); imported: the integrator's import file
 * listed them; unknown: imported without scopes (counts as lacking every required scope); probed:
 * discovered by calling Carta with the token.
 */
export type ScopeSource = 'reported' | 'assumed' | 'imported' | 'unknown' | 'probed'

export type GrantStatus = 'active' | 'superseded' | 'revoked' | 'broken'

export interface GrantTable {
  id: Generated<number>
  user_id: number
  app_id: number
  requested_scopes: string
  granted_scopes: string
  scopes_source: ScopeSource
  status: GrantStatus
  status_reason: string | null
  created_at: Millis
  ended_at: Millis | null
  superseded_by: number | null
  /** The import run that recorded the grant (migrations/0007_import.ts), null when connected here. */
  import_run_id: Generated<number | null>
  /** SHA-256 of the import row it came from: the same row imported again changes nothing. */
  import_fingerprint: Generated<string | null>
}

export interface GrantScopeTable {
  grant_id: number
  scope: string
}

export interface GrantTokenTable {
  grant_id: number
  key_id: string
  /** AES-256-GCM ciphertext (see src/grants/token-cipher.ts), never the token. */
  access_token: string
  refresh_token: string | null
  token_type: Generated<string>
  access_expires_at: Millis | null
  version: Generated<number>
  refresh_lock_owner: string | null
  refresh_lock_until: Millis | null
  refreshed_at: Millis | null
  updated_at: Millis
}

export interface TokenRevocationTable {
  id: Generated<number>
  /** Null for tokens Carta issued that were never recorded as a grant (a refused callback). */
  grant_id: number | null
  app_id: number
  key_id: string
  /** Encrypted token to revoke at Carta (RFC 7009). */
  token: string
  token_type_hint: 'access_token' | 'refresh_token'
  status: Generated<'pending' | 'done' | 'failed'>
  attempts: Generated<number>
  next_attempt_at: Millis
  last_error: string | null
  lock_until: Millis | null
  created_at: Millis
  done_at: Millis | null
}

export interface OAuthStateTable {
  state: string
  session_id: string
  app_id: number
  code_verifier: string
  requested_scopes: string
  redirect_uri: string
  link_id: number | null
  expected_user_id: number | null
  return_to: string | null
  /** Set when the flow was started from an API connect session (src/api/connect-sessions.ts). */
  connect_session_id: Generated<number | null>
  created_at: Millis
  expires_at: Millis
  used_at: Millis | null
}

export interface SessionTable {
  sid: string
  data: string
  expires_at: Millis
}

/** Rate-limit counters shared by every instance (http/plugins/rate-limit-store.ts). */
export interface RateLimitHitTable {
  key: string
  hits: number
  reset_at: Millis
}

export interface AuditEventTable {
  id: Generated<number>
  at: Millis
  type: string
  /** "user:<id>", "operator:<username>", "system" or "anonymous". */
  actor: string
  user_id: number | null
  grant_id: number | null
  app_id: number | null
  rollout_id: number | null
  /** JSON object; never a token or secret. */
  details: Generated<string>
}

export interface CoreTables {
  oauth_apps: OAuthAppTable
  end_users: EndUserTable
  grants: GrantTable
  grant_scopes: GrantScopeTable
  grant_tokens: GrantTokenTable
  token_revocations: TokenRevocationTable
  oauth_states: OAuthStateTable
  sessions: SessionTable
  audit_events: AuditEventTable
  rate_limit_hits: RateLimitHitTable
}

export interface Database
  extends CoreTables,
    AdminTables,
    ImportTables,
    RolloutTables,
    LinkTables,
    ReportTables,
    ApiTables,
    WebhookTables,
    MailTables {}
