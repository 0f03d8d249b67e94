// Connect sessions (src/README.md, "API"): the integrator's product asks for a one-time URL for
// one of its users (externalUserId) and a returnTo under an allowed origin; the user opens it, the
// normal connect flow runs (flows/connect.ts), and the Carta identity it yields is tied to
// externalUserId in the grant's own transaction. The token in the URL is 256 random bits, stored
// as its SHA-256, single use, expiring after CONNECT_SESSION_TTL_MS.
import { createHash, randomBytes } from 'node:crypto'
import type { Kysely, Selectable, Transaction } from 'kysely'
import { recordAudit } from '../audit/events.js'
import type { Config } from '../config.js'
import type { Database } from '../db/schema.js'
import { DomainError } from '../errors.js'
import type { ConnectSessionTable } from './tables.js'

export const CONNECT_SESSION_TTL_MS = 30 * 60 * 1000
export const CONNECT_SESSION_PATH = '/connect/session'
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/

export type ConnectSessionRow = Selectable<ConnectSessionTable>

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** The returnTo, when it is an absolute URL under one of the configured origins. */
export function allowedReturn(config: Pick<Config, 'api'>, returnTo: string): string | null {
  let url: URL
  try {
    url = new URL(returnTo)
  } catch {
    return null
  }
  if (url.username || url.password) return null
  return config.api.allowedReturnOrigins.includes(url.origin) ? url.href : null
}

export async function createConnectSession(
  db: Kysely<Database>,
  config: Pick<Config, 'api' | 'publicUrl'>,
  input: { externalUserId: string; returnTo: string; apiKeyId: number; actor: string },
  now: number,
): Promise<{ url: string; expiresAt: number }> {
  const returnTo = allowedReturn(config, input.returnTo)
  if (!returnTo) {
    let origin = input.returnTo
    try {
      origin = new URL(input.returnTo).origin
    } catch {}
    throw new DomainError('connect_session.bad_return', `returnTo ${origin.slice(0, 100)} is not allowed.`, { origin })
  }
  const token = randomBytes(32).toString('base64url')
  const expiresAt = now + CONNECT_SESSION_TTL_MS
  await db.transaction().execute(async (trx) => {
    const { id } = await trx
      .insertInto('connect_sessions')
      .values({
        token_hash: hashToken(token),
        external_user_id: input.externalUserId,
        return_to: returnTo,
        api_key_id: input.apiKeyId,
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
        user_id: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'api.connect_session_created',
      actor: input.actor,
      details: { connectSessionId: id, externalUserId: input.externalUserId, returnOrigin: new URL(returnTo).origin },
    })
  })
  return { url: `${config.publicUrl}${CONNECT_SESSION_PATH}/${token}`, expiresAt }
}

/** Marks the session opened (one conditional UPDATE: of two concurrent opens, one wins). */
export async function openConnectSession(db: Kysely<Database>, token: string, now: number): Promise<ConnectSessionRow> {
  const unavailable = (reason: 'unknown' | 'used' | 'expired') =>
    new DomainError('connect_session.unavailable', `Connect session ${reason}.`, { reason })
  if (!TOKEN_SHAPE.test(token)) throw unavailable('unknown')
  const hash = hashToken(token)
  const result = await db
    .updateTable('connect_sessions')
    .set({ used_at: now })
    .where('token_hash', '=', hash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  const row = await db.selectFrom('connect_sessions').selectAll().where('token_hash', '=', hash).executeTakeFirst()
  if (!row) throw unavailable('unknown')
  if (Number(result.numUpdatedRows) !== 1) throw unavailable(row.used_at !== null ? 'used' : 'expired')
  return row
}

/**
 * Inside the callback's grant transaction: ties the connected user to the session's external id.
 * Refused (rolling the grant back) when that external id belongs to another user, or this user
 * already carries another one.
 */
export async function bindExternalUser(
  trx: Transaction<Database>,
  sessionId: number,
  userId: number,
): Promise<{ returnTo: string }> {
  const session = await trx
    .selectFrom('connect_sessions')
    .select(['external_user_id', 'return_to'])
    .where('id', '=', sessionId)
    .executeTakeFirstOrThrow()
  const holder = await trx
    .selectFrom('end_users')
    .select('id')
    .where('external_user_id', '=', session.external_user_id)
    .executeTakeFirst()
  const user = await trx
    .selectFrom('end_users')
    .select('external_user_id')
    .where('id', '=', userId)
    .executeTakeFirstOrThrow()
  const taken =
    (holder && holder.id !== userId) ||
    (user.external_user_id !== null && user.external_user_id !== session.external_user_id)
  if (taken)
    throw new DomainError('connect_session.external_taken', 'The external id or the Carta user is tied to another.', {})
  await trx
    .updateTable('end_users')
    .set({ external_user_id: session.external_user_id })
    .where('id', '=', userId)
    .execute()
  await trx.updateTable('connect_sessions').set({ user_id: userId }).where('id', '=', sessionId).execute()
  return { returnTo: session.return_to }
}
