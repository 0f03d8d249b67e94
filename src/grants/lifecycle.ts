// The end of a grant's life: broken (Carta refused its refresh token) or revoked by an operator.
// Each change is one transaction that also keeps rollout membership and the audit trail in step.
import type { Transaction } from 'kysely'
import type { Db } from '../db/index.js'
import type { Database } from '../db/schema.js'
import { recordAudit } from '../audit/events.js'
import { syncUserRollouts } from '../rollouts/membership.js'
import { DomainError } from '../errors.js'

type Trx = Transaction<Database>

/**
 * Marks a grant broken (e.g. `invalid_grant` on refresh, RFC 6749 §5.2) and, when it is the user's
 * active grant, the user as needing to reconnect. Returns false when the grant was not active
 * (someone else already ended it): nothing is written then.
 */
export async function markGrantBroken(trx: Trx, grantId: number, reason: string, now: number): Promise<boolean> {
  const grant = await trx
    .selectFrom('grants')
    .select(['id', 'user_id', 'app_id', 'status'])
    .where('id', '=', grantId)
    .executeTakeFirst()
  if (grant?.status !== 'active') return false
  await trx
    .updateTable('grants')
    .set({ status: 'broken', status_reason: reason, ended_at: now })
    .where('id', '=', grantId)
    .where('status', '=', 'active')
    .execute()
  const user = await trx
    .selectFrom('end_users')
    .select(['id', 'active_grant_id'])
    .where('id', '=', grant.user_id)
    .executeTakeFirst()
  if (user?.active_grant_id === grantId) {
    await trx
      .updateTable('end_users')
      .set({ status: 'needs_reconnect', updated_at: now })
      .where('id', '=', user.id)
      .execute()
  }
  await syncUserRollouts(trx, grant.user_id, now)
  await recordAudit(trx, now, {
    type: 'grant.broken',
    actor: 'system',
    userId: grant.user_id,
    grantId,
    appId: grant.app_id,
    details: { reason },
  })
  return true
}

/**
 * Queues RFC 7009 revocation of a grant's stored tokens: the refresh token first (revoking it
 * SHOULD also end the access tokens of the same grant, RFC 7009 §2.1), then the access token for
 * servers that do not. The ciphertext is copied as is; the worker decrypts it when it sends.
 */
export async function enqueueGrantRevocation(trx: Trx, grantId: number, now: number): Promise<number> {
  const tokens = await trx
    .selectFrom('grant_tokens')
    .innerJoin('grants', 'grants.id', 'grant_tokens.grant_id')
    .select(['grant_tokens.key_id', 'grant_tokens.access_token', 'grant_tokens.refresh_token', 'grants.app_id'])
    .where('grant_tokens.grant_id', '=', grantId)
    .executeTakeFirst()
  if (!tokens) return 0
  const rows = [
    ...(tokens.refresh_token ? [{ token: tokens.refresh_token, token_type_hint: 'refresh_token' as const }] : []),
    { token: tokens.access_token, token_type_hint: 'access_token' as const },
  ]
  for (const row of rows) {
    await trx
      .insertInto('token_revocations')
      .values({
        grant_id: grantId,
        app_id: tokens.app_id,
        key_id: tokens.key_id,
        ...row,
        next_attempt_at: now,
        last_error: null,
        lock_until: null,
        created_at: now,
        done_at: null,
      })
      .execute()
  }
  return rows.length
}

export interface OperatorRevokeResult {
  userId: number
  grantId: number
  queued: number
}

/**
 * Operator revokes a user's active grant: queue the tokens for revocation at Carta, drop the
 * stored tokens (a revoked grant must not be usable here either), mark grant revoked and user
 * needing reconnect. The caller sends the queued revocations right after the commit (never a
 * network call inside the transaction).
 */
export async function revokeGrantByOperator(
  db: Db,
  userId: number,
  actor: string,
  now: number,
): Promise<OperatorRevokeResult> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('end_users')
      .select(['id', 'active_grant_id'])
      .where('id', '=', userId)
      .executeTakeFirst()
    if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
    const grant = user.active_grant_id
      ? await trx
          .selectFrom('grants')
          .select(['id', 'app_id', 'status'])
          .where('id', '=', user.active_grant_id)
          .executeTakeFirst()
      : undefined
    if (!grant || (grant.status !== 'active' && grant.status !== 'broken')) {
      throw new DomainError('grant.nothing_to_revoke', `User ${userId} has no active grant to revoke.`, { userId })
    }
    const queued = await enqueueGrantRevocation(trx, grant.id, now)
    await trx.deleteFrom('grant_tokens').where('grant_id', '=', grant.id).execute()
    await trx
      .updateTable('grants')
      .set({ status: 'revoked', status_reason: `revoked by ${actor}`, ended_at: now })
      .where('id', '=', grant.id)
      .execute()
    await trx
      .updateTable('end_users')
      .set({ status: 'needs_reconnect', updated_at: now })
      .where('id', '=', userId)
      .execute()
    await syncUserRollouts(trx, userId, now)
    await recordAudit(trx, now, {
      type: 'grant.revoked_by_operator',
      actor,
      userId,
      grantId: grant.id,
      appId: grant.app_id,
      details: { previousStatus: grant.status, queuedRevocations: queued },
    })
    return { userId, grantId: grant.id, queued }
  })
}
