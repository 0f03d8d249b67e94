// Table types of import runs (migrations/0007_import.ts).
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export type ImportRunStatus = 'running' | 'done' | 'failed'

export interface ImportRunTable {
  id: Generated<number>
  /** "operator:<username>" or "cli". */
  actor: string
  /** The file's base name as given (never its contents). */
  file_name: string
  format: 'jsonl' | 'csv'
  status: ImportRunStatus
  started_at: Millis
  finished_at: Millis | null
  /** Moved with every batch: a 'running' run whose heartbeat is old was interrupted. */
  heartbeat_at: Millis
  created: Generated<number>
  superseded: Generated<number>
  unchanged: Generated<number>
  rejected: Generated<number>
  rejects_file: string | null
  error: string | null
}

export interface CartaBudgetTable {
  client_id: string
  /** GCRA theoretical arrival times (budget.ts, migration 0012) of the per-second and per-minute limits. */
  second_tat: Generated<Millis>
  minute_tat: Generated<Millis>
  /** Fixed windows of migration 0007: no longer used. */
  second_start: Generated<Millis>
  second_count: Generated<number>
  minute_start: Generated<Millis>
  minute_count: Generated<number>
  /** Carta said 429: nobody calls with this client id before then (Retry-After / RateLimit-Reset). */
  blocked_until: Generated<Millis>
}

export interface ScopeDiscoveryTable {
  grant_id: number
  /** done: probed (evidence kept); pending: to try again at next_attempt_at. */
  status: 'done' | 'pending'
  attempts: Generated<number>
  next_attempt_at: Generated<Millis>
  lock_owner: string | null
  lock_until: Millis | null
  /** JSON array of ProbeResult-like entries: scope, outcome, status, endpoint, reason, at. */
  evidence: Generated<string>
  updated_at: Millis
}

export interface DiscoverySettingsTable {
  id: number
  paused: Generated<number>
  updated_by: string | null
  updated_at: Millis | null
}

/** Rejected lines of an uploaded import (migration 0012), keyed by the run's rejects_file. */
export interface ImportRejectTable {
  rejects_key: string
  line: number
  reason: string
  carta_user_id: string | null
  client_id: string | null
}

export interface ImportTables {
  import_rejects: ImportRejectTable
  import_runs: ImportRunTable
  carta_budgets: CartaBudgetTable
  scope_discoveries: ScopeDiscoveryTable
  discovery_settings: DiscoverySettingsTable
}
