// An operator revokes a user's grant (the other ends of a grant's life — broken on refresh,
// superseded by a new grant — happen in access.ts and the connect flow). One transaction, through
// changeGrant (change.ts), which also queues the tokens for revocation at Carta.
import type { Db } from '../db/index.js'
import { DomainError } from '../errors.js'
import { changeGrant } from './change.js'
import type { TokenCipher } from './token-cipher.js'

export interface OperatorRevokeResult {
  userId: number
  grantId: number
  queued: number
}

/**
 * Revokes a user's active (or broken) grant: its tokens are queued for revocation at Carta and
 * dropped here, the grant is marked revoked and the user needs to reconnect. The caller sends the
 * queued revocations right after the commit (never a network call inside the transaction).
 */
export async function revokeGrantByOperator(
  deps: { db: Db; cipher: TokenCipher },
  userId: number,
  actor: string,
  now: number,
): Promise<OperatorRevokeResult> {
  return deps.db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('end_users')
      .select(['id', 'active_grant_id'])
      .where('id', '=', userId)
      .executeTakeFirst()
    if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
    const nothing = () =>
      new DomainError('grant.nothing_to_revoke', `User ${userId} has no active grant to revoke.`, { userId })
    if (user.active_grant_id === null) throw nothing()
    const result = await changeGrant(trx, deps.cipher, { kind: 'revoked', grantId: user.active_grant_id, actor }, now)
    if (!result.changed) throw nothing()
    return { userId, grantId: result.grantId, queued: result.queuedRevocations }
  })
}
