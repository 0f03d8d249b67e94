// Table types of operator accounts (migrations/0002_rollouts.ts). Owned by the admin module.
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export interface OperatorTable {
  id: Generated<number>
  username: string
  /** scrypt$N$r$p$salt$hash (see src/admin/passwords.ts). */
  password_hash: string
  created_at: Millis
  last_sign_in_at: Millis | null
}

export interface AdminTables {
  operators: OperatorTable
}
