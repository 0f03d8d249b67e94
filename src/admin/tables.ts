// Table types of operator accounts (migrations/0002_rollouts.ts, 0009_operator_roles.ts). Owned by
// the admin module.
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

/** What an operator may do: viewer reads, operator acts on rollouts and links, admin manages. */
export type OperatorRole = 'viewer' | 'operator' | 'admin'
export const OPERATOR_ROLES: readonly OperatorRole[] = ['viewer', 'operator', 'admin']

export interface OperatorTable {
  id: Generated<number>
  /** Password accounts: [a-z0-9._-]; single sign-on accounts: the e-mail address (or oidc:<sub>). */
  username: string
  /** scrypt$N$r$p$salt$hash (see src/admin/passwords.ts); '!' for single sign-on accounts. */
  password_hash: string
  created_at: Millis
  last_sign_in_at: Millis | null
  role: Generated<OperatorRole>
  disabled_at: Millis | null
  email: string | null
  /** The identity provider's issuer and subject, for single sign-on accounts. */
  oidc_issuer: string | null
  oidc_subject: string | null
}

export interface AdminTables {
  operators: OperatorTable
}
