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

export interface ImportTables {
  import_runs: ImportRunTable
}
