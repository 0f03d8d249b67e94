// Operator accounts: created by the CLI (`operator create`), or on a first start with none.
import type { Selectable } from 'kysely'
import type { Db } from '../db/index.js'
import { isUniqueViolation } from '../db/dialect.js'
import { DomainError, isDomainError } from '../errors.js'
import type { OperatorTable } from './tables.js'
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

export async function createOperator(db: Db, username: string, password: string, now: number): Promise<OperatorRow> {
  const name = validateUsername(username)
  validatePassword(password)
  const password_hash = await hashPassword(password)
  try {
    return await db
      .insertInto('operators')
      .values({ username: name, password_hash, created_at: now, last_sign_in_at: null })
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
