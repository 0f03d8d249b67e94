// Opting out of email: a signed, per-person unsubscribe URL carried in every message's
// List-Unsubscribe header with List-Unsubscribe-Post (RFC 8058 one-click), and the opt-out record
// that every campaign, reminder and the outbox worker honour.
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/events.js'
import type { Database } from '../db/schema.js'

// Domain separation from the reauthorization links signed with the same secret.
const MAC_CONTEXT = 'scope-ledger/unsubscribe/v1\n'
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{43}$/

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret).update(MAC_CONTEXT).update(payload).digest()
}

/** base64url(user id, 4 bytes) "." base64url(HMAC-SHA256): names one person, cannot be forged. */
export function unsubscribeToken(secret: string, userId: number): string {
  const id = Buffer.alloc(4)
  id.writeUInt32BE(userId)
  const payload = id.toString('base64url')
  return `${payload}.${mac(secret, payload).toString('base64url')}`
}

export function verifyUnsubscribeToken(secret: string, token: string): number | null {
  if (!TOKEN_SHAPE.test(token)) return null
  const [payload, given] = token.split('.') as [string, string]
  const givenBytes = Buffer.from(given, 'base64url')
  if (givenBytes.length !== 32 || givenBytes.toString('base64url') !== given) return null
  if (!timingSafeEqual(givenBytes, mac(secret, payload))) return null
  const bytes = Buffer.from(payload, 'base64url')
  if (bytes.length !== 4 || bytes.toString('base64url') !== payload) return null
  const userId = bytes.readUInt32BE(0)
  return userId >= 1 && userId <= 2_147_483_647 ? userId : null
}

export function unsubscribeUrl(publicUrl: string, secret: string, userId: number): string {
  return `${publicUrl}/mail/unsubscribe/${unsubscribeToken(secret, userId)}`
}

/**
 * Records that a person wants no more email (idempotent) and skips what is still queued for them.
 * True when this call opted them out (false: they already were).
 */
export async function optOut(
  db: Kysely<Database>,
  userId: number,
  source: 'one-click' | 'page',
  now: number,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const user = await trx.selectFrom('end_users').select('id').where('id', '=', userId).executeTakeFirst()
    if (!user) return false
    const inserted = await trx
      .insertInto('mail_opt_outs')
      .values({ user_id: userId, at: now, source })
      .onConflict((oc) => oc.column('user_id').doNothing())
      .returning('user_id')
      .execute()
    if (inserted.length === 0) return false
    await trx
      .updateTable('mail_outbox')
      .set({ status: 'skipped', reason: 'opted_out', updated_at: now })
      .where('user_id', '=', userId)
      .where('kind', '=', 'link')
      .where('status', '=', 'queued')
      .execute()
    await recordAudit(trx, now, { type: 'mail.opted_out', actor: `user:${userId}`, userId, details: { source } })
    return true
  })
}

export async function isOptedOut(db: Kysely<Database>, userId: number): Promise<boolean> {
  const row = await db.selectFrom('mail_opt_outs').select('user_id').where('user_id', '=', userId).executeTakeFirst()
  return row !== undefined
}
