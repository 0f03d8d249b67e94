// Table types for coverage reports (migrations/0003_reports.ts). Owned by the reports module.
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export type ReportTrigger = 'schedule' | 'manual'
export type ReportRunStatus = 'running' | 'succeeded' | 'failed'
/** null when no webhook is configured. */
export type DeliveryStatus = 'pending' | 'sent' | 'failed'

export interface ReportRunTable {
  id: Generated<number>
  /** ISO time of the schedule slot (UTC), or `manual:<uuid>`. UNIQUE: one run per slot. */
  slot_key: string
  trigger: ReportTrigger
  started_at: Millis
  finished_at: Millis | null
  status: ReportRunStatus
  error: string | null
  /** JSON {json, csv, html}: file names in the reports directory. */
  files: Generated<string>
  delivery_status: DeliveryStatus | null
  delivery_error: string | null
  delivery_attempts: Generated<number>
}

export interface CoverageSnapshotTable {
  id: Generated<number>
  run_id: number
  rollout_id: number
  rollout_name: string
  required_scopes: string
  taken_at: Millis
  members: number
  active_users: number
  covered: number
  lacking: number
  reconnect: number
  links_issued: number
  links_used: number
  links_issued_24h: number
  links_used_24h: number
  /** JSON SnapshotDetail (see src/reports/snapshot.ts). */
  detail: string
}

export interface ReportTables {
  report_runs: ReportRunTable
  coverage_snapshots: CoverageSnapshotTable
}
