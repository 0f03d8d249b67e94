// End users: the people who connected Carta. Identified by Carta's user id when read_user_info
// was granted, otherwise by a local key bound to their browser session (src/README.md, "Data model").
import { randomBytes } from 'node:crypto'
import type { Kysely, Selectable, Transaction } from 'kysely'
import type { Database, EndUserTable } from '../db/schema.js'

export type EndUserRow = Selectable<EndUserTable>

export interface CartaIdentity {
  cartaUserId: string
  email: string | null
  name: string | null
}

export function newLocalKey(): string {
  return randomBytes(18).toString('base64url')
}

export async function findEndUser(db: Kysely<Database>, id: number): Promise<EndUserRow | undefined> {
  return db.selectFrom('end_users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findEndUserByCartaId(db: Kysely<Database>, cartaUserId: string): Promise<EndUserRow | undefined> {
  return db.selectFrom('end_users').selectAll().where('carta_user_id', '=', cartaUserId).executeTakeFirst()
}

/**
 * The end user a new grant belongs to. Known Carta identity → that user (created if new; a
 * session-local user without a Carta id is adopted, so a person who first connected without
 * read_user_info keeps their history). Unknown identity → the session's local user, or a new one
 * with a fresh local key that the caller must store in the session.
 */
export async function resolveEndUser(
  trx: Transaction<Database>,
  input: { identity: CartaIdentity | null; localKey: string | null; now: number },
): Promise<{ user: EndUserRow; createdLocalKey: string | null }> {
  const { identity, localKey, now } = input
  if (identity) {
    const known = await findEndUserByCartaId(trx, identity.cartaUserId)
    if (known) {
      await trx
        .updateTable('end_users')
        .set({ email: identity.email ?? known.email, name: identity.name ?? known.name, updated_at: now })
        .where('id', '=', known.id)
        .execute()
      return {
        user: { ...known, email: identity.email ?? known.email, name: identity.name ?? known.name },
        createdLocalKey: null,
      }
    }
    const local = localKey
      ? await trx.selectFrom('end_users').selectAll().where('local_key', '=', localKey).executeTakeFirst()
      : undefined
    if (local && local.carta_user_id === null) {
      await adoptIdentity(trx, local.id, identity, now)
      return {
        user: { ...local, carta_user_id: identity.cartaUserId, email: identity.email, name: identity.name },
        createdLocalKey: null,
      }
    }
    // Two browsers connecting the same Carta user for the first time race here: the loser's
    // insert waits for the winner's commit and does nothing; the next statement sees the winner's
    // row (PostgreSQL READ COMMITTED takes a fresh snapshot per statement).
    await trx
      .insertInto('end_users')
      .values({
        carta_user_id: identity.cartaUserId,
        local_key: null,
        email: identity.email,
        name: identity.name,
        active_grant_id: null,
        status: 'connected',
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('carta_user_id').doNothing())
      .execute()
    const user = await findEndUserByCartaId(trx, identity.cartaUserId)
    if (!user) throw new Error(`end user for Carta user ${identity.cartaUserId} vanished`)
    return { user, createdLocalKey: null }
  }
  if (localKey) {
    const local = await trx.selectFrom('end_users').selectAll().where('local_key', '=', localKey).executeTakeFirst()
    if (local) return { user: local, createdLocalKey: null }
  }
  const key = newLocalKey()
  const id = await insertUser(trx, { carta_user_id: null, local_key: key, email: null, name: null }, now)
  return { user: (await findEndUser(trx, id))!, createdLocalKey: key }
}

/** Records the Carta identity on a user that had none. */
export async function adoptIdentity(
  trx: Transaction<Database>,
  userId: number,
  identity: CartaIdentity,
  now: number,
): Promise<void> {
  await trx
    .updateTable('end_users')
    .set({ carta_user_id: identity.cartaUserId, email: identity.email, name: identity.name, updated_at: now })
    .where('id', '=', userId)
    .execute()
}

async function insertUser(
  trx: Transaction<Database>,
  values: { carta_user_id: string | null; local_key: string | null; email: string | null; name: string | null },
  now: number,
): Promise<number> {
  const row = await trx
    .insertInto('end_users')
    .values({ ...values, active_grant_id: null, status: 'connected', created_at: now, updated_at: now })
    .returning('id')
    .executeTakeFirstOrThrow()
  return Number(row.id)
}
