// Operator accounts: created by the CLI (`operator create`), or on a first start with none.
import type { Selectable } from 'kysely'
import type { Db } from '../db/index.js'
import { isUniqueViolation } from '../db/dialect.js'
import { DomainError, isDomainError } from '../errors.js'
import { recordAudit } from '../audit/events.js'
import { OPERATOR_ROLES, type OperatorRole, type OperatorTable } from './tables.js'
import { MIN_PASSWORD_LENGTH, generatePassword, hashPassword, timingDummyHash, verifyPassword } from './passwords.js'

export type OperatorRow = Selectable<OperatorTable>

/** An operator account request that cannot be honoured (bad name or password, duplicate, unknown). */
function invalid(message: string): DomainError<'operator.invalid'> {
  return new DomainError('operator.invalid', message, {})
}

const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/

export function validateUsername(username: string): string {
  const value = username.trim().toLowerCase()
  if (!USERNAME.test(value)) throw invalid('Usernames are 1–64 characters: lowercase letters, digits, ".", "_" or "-".')
  return value
}

export function validatePassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH)
    throw invalid(`Passwords must be at least ${MIN_PASSWORD_LENGTH} characters.`)
  if (password.length > 1024) throw invalid('Passwords may be at most 1024 characters.')
}

/** True when `role` holds at least the powers of `needed` (viewer < operator < admin). */
export function roleAllows(role: OperatorRole, needed: OperatorRole): boolean {
  return OPERATOR_ROLES.indexOf(role) >= OPERATOR_ROLES.indexOf(needed)
}

export function validateRole(value: string): OperatorRole {
  const role = value.trim().toLowerCase()
  if (!(OPERATOR_ROLES as readonly string[]).includes(role))
    throw invalid(`Roles are ${OPERATOR_ROLES.join(', ')} (got "${value.slice(0, 40)}").`)
  return role as OperatorRole
}

/**
 * A password account. Accounts made before roles existed held every power, and so do accounts
 * made without a role (the first start's `admin`, the CLI's default).
 */
export async function createOperator(
  db: Db,
  username: string,
  password: string,
  now: number,
  role: OperatorRole = 'admin',
): Promise<OperatorRow> {
  const name = validateUsername(username)
  validatePassword(password)
  const password_hash = await hashPassword(password)
  try {
    return await db
      .insertInto('operators')
      .values({ username: name, password_hash, created_at: now, last_sign_in_at: null, role })
      .returningAll()
      .executeTakeFirstOrThrow()
  } catch (err) {
    if (isUniqueViolation(err)) throw invalid(`An operator named "${name}" already exists.`)
    throw err
  }
}

export async function resetOperatorPassword(db: Db, username: string, password: string): Promise<void> {
  const name = validateUsername(username)
  validatePassword(password)
  const password_hash = await hashPassword(password)
  const result = await db
    .updateTable('operators')
    .set({ password_hash })
    .where('username', '=', name)
    .executeTakeFirst()
  if (Number(result.numUpdatedRows) === 0) throw invalid(`No operator named "${name}".`)
}

/** The operator for these credentials, or null. Unknown names still pay one scrypt (timing). */
export async function checkOperatorCredentials(
  db: Db,
  username: string,
  password: string,
  now: number,
): Promise<OperatorRow | null> {
  const name = username.trim().toLowerCase()
  const row = USERNAME.test(name)
    ? await db.selectFrom('operators').selectAll().where('username', '=', name).executeTakeFirst()
    : undefined
  if (!row) {
    await verifyPassword(password, await timingDummyHash())
    return null
  }
  if (!(await verifyPassword(password, row.password_hash))) return null
  // A disabled account is refused like a wrong password: the page says nothing either way.
  if (row.disabled_at !== null) return null
  await db.updateTable('operators').set({ last_sign_in_at: now }).where('id', '=', row.id).execute()
  return row
}

export async function countOperators(db: Db): Promise<number> {
  const row = await db
    .selectFrom('operators')
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst()
  return Number(row?.n ?? 0)
}

/**
 * On a first start with no operator, creates `admin` with a random password and returns it so the
 * caller can print it ONCE; null when an operator exists (or another instance just made one).
 */
export async function ensureFirstOperator(db: Db, now: number): Promise<{ username: string; password: string } | null> {
  if ((await countOperators(db)) > 0) return null
  const password = generatePassword()
  try {
    await createOperator(db, 'admin', password, now)
  } catch (err) {
    if (isDomainError(err, 'operator.invalid')) return null
    throw err
  }
  return { username: 'admin', password }
}

export async function findOperator(db: Db, id: number): Promise<OperatorRow | undefined> {
  return db.selectFrom('operators').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Every account for the operators page: enabled ones first, then by name. */
export async function listOperators(db: Db): Promise<OperatorRow[]> {
  const rows = await db.selectFrom('operators').selectAll().orderBy('username').execute()
  return rows.sort((a, b) => Number(a.disabled_at !== null) - Number(b.disabled_at !== null))
}

/** An admin's change to another account: its role, or disabling / enabling it. Audited. */
export async function updateOperator(
  db: Db,
  input: { id: number; role?: OperatorRole; disabled?: boolean; actorId: number; actor: string },
  now: number,
): Promise<OperatorRow> {
  // Changing your own account could leave nobody able to manage accounts.
  if (input.id === input.actorId) throw invalid('You cannot change your own role or disable your own account.')
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('operators').selectAll().where('id', '=', input.id).executeTakeFirst()
    if (!row) throw new DomainError('operator.not_found', `There is no operator ${input.id}.`, { operatorId: input.id })
    const changes: { role?: OperatorRole; disabled_at?: number | null } = {}
    if (input.role !== undefined && input.role !== row.role) changes.role = input.role
    if (input.disabled === true && row.disabled_at === null) changes.disabled_at = now
    if (input.disabled === false && row.disabled_at !== null) changes.disabled_at = null
    if (Object.keys(changes).length === 0) return row
    await trx.updateTable('operators').set(changes).where('id', '=', row.id).execute()
    if (changes.role !== undefined)
      await recordAudit(trx, now, {
        type: 'operator.role_changed',
        actor: input.actor,
        details: { operator: row.username, from: row.role, to: changes.role },
      })
    if (changes.disabled_at !== undefined)
      await recordAudit(trx, now, {
        type: changes.disabled_at === null ? 'operator.enabled' : 'operator.disabled',
        actor: input.actor,
        details: { operator: row.username },
      })
    return { ...row, ...changes }
  })
}

/** The CLI's `operator set-role`: by name, with no signed-in actor to protect. */
export async function setOperatorRole(db: Db, username: string, role: OperatorRole, now: number): Promise<void> {
  const name = username.trim().toLowerCase()
  const row = await db.selectFrom('operators').select(['id', 'role']).where('username', '=', name).executeTakeFirst()
  if (!row) throw invalid(`No operator named "${name}".`)
  if (row.role === role) return
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('operators').set({ role }).where('id', '=', row.id).execute()
    await recordAudit(trx, now, {
      type: 'operator.role_changed',
      actor: 'system',
      details: { operator: name, from: row.role, to: role },
    })
  })
}

/** Who signed in at the identity provider, after the HTTP layer validated the ID token. */
export interface ProviderIdentity {
  issuer: string
  subject: string
  email: string | null
  /** The role the provider's claim maps to; null when roles are kept per account. */
  role: OperatorRole | null
  /** The role of an account made at its first sign-in when the provider says none. */
  defaultRole: OperatorRole
}

/**
 * The account of a single sign-on identity: found by issuer + subject (OpenID Connect Core §5.7;
 * never by e-mail, which an identity provider may reassign), created at the first sign-in. A
 * claim-mapped role replaces the stored one at each sign-in. Disabled accounts are refused.
 */
export async function signInWithIdentity(db: Db, identity: ProviderIdentity, now: number): Promise<OperatorRow> {
  const existing = await db
    .selectFrom('operators')
    .selectAll()
    .where('oidc_issuer', '=', identity.issuer)
    .where('oidc_subject', '=', identity.subject)
    .executeTakeFirst()
  if (existing) {
    if (existing.disabled_at !== null)
      throw new DomainError('operator.disabled', `Operator ${existing.username} is disabled.`, {})
    const role = identity.role ?? existing.role
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('operators')
        .set({ last_sign_in_at: now, role, email: identity.email ?? existing.email })
        .where('id', '=', existing.id)
        .execute()
      // The provider's claim moved the role: recorded like an admin's change.
      if (role !== existing.role)
        await recordAudit(trx, now, {
          type: 'operator.role_changed',
          actor: 'system',
          details: { operator: existing.username, from: existing.role, to: role, via: 'sso' },
        })
    })
    return { ...existing, role, last_sign_in_at: now }
  }
  const username = (identity.email ?? `oidc:${identity.subject}`).toLowerCase().slice(0, 200)
  try {
    return await db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('operators')
        .values({
          username,
          password_hash: '!',
          created_at: now,
          last_sign_in_at: now,
          role: identity.role ?? identity.defaultRole,
          email: identity.email,
          oidc_issuer: identity.issuer,
          oidc_subject: identity.subject,
        })
        .returningAll()
        .executeTakeFirstOrThrow()
      await recordAudit(trx, now, {
        type: 'operator.created',
        actor: 'system',
        details: { operator: row.username, role: row.role, via: 'sso' },
      })
      return row
    })
  } catch (err) {
    // Another identity already holds this name (an address the provider gave someone new): an
    // admin decides, the accounts are never merged silently.
    if (isUniqueViolation(err))
      throw new DomainError('operator.identity_conflict', `An operator named ${username} already exists.`, {})
    throw err
  }
}
