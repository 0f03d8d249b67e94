// Recording a grant: everything the callback learned goes into the ledger in ONE transaction
// (DESIGN §3.1), so a failure at any step leaves no half-written rows.
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/events.js'
import { DomainError } from '../errors.js'
import type { TokenSet } from '../carta/oauth-client.js'
import type { Database } from '../db/schema.js'
import { consumeLink } from '../rollouts/links.js'
import { syncUserRollouts } from '../rollouts/membership.js'
import { formatScopes } from '../scopes.js'
import {
  type CartaIdentity,
  adoptIdentity,
  findEndUser,
  findEndUserByCartaId,
  resolveEndUser,
} from '../users/end-users.js'
import { enqueueGrantRevocation } from './lifecycle.js'
import type { TokenCipher } from './token-cipher.js'
import { storeTokens } from './tokens.js'

export interface GrantInput {
  appId: number
  appKey: string
  requestedScopes: string[]
  grantedScopes: string[]
  /** reported: the token response listed the scopes; assumed: it did not (RFC 6749 §5.1). */
  scopesSource: 'reported' | 'assumed'
  tokens: TokenSet
  identity: CartaIdentity | null
  /** The browser session's local key, for users whose Carta identity is unknown. */
  localKey: string | null
  /** Reauthorization-link flows: the link to consume and the user it was issued for. */
  linkId?: number | null
  expectedUserId?: number | null
  now: number
}

export interface RecordedGrant {
  userId: number
  grantId: number
  supersededGrantId: number | null
  /** Set when a new local user was created: the caller stores it in the session. */
  createdLocalKey: string | null
}

/** The returning Carta identity is not the link's user; everything is rolled back. */
function identityMismatch(reason: string): DomainError<'connect.identity_mismatch'> {
  return new DomainError('connect.identity_mismatch', `Carta identity does not match the link: ${reason}`, { reason })
}

export async function recordGrant(
  db: Kysely<Database>,
  cipher: TokenCipher,
  input: GrantInput,
): Promise<RecordedGrant> {
  const { now } = input
  return db.transaction().execute(async (trx) => {
    const { userId, createdLocalKey } = await targetUser(trx, input)
    const actor = `user:${userId}`
    const previous = await trx
      .selectFrom('grants')
      .select(['id', 'app_id'])
      .where('user_id', '=', userId)
      .where('status', '=', 'active')
      .execute()

    const granted = formatScopes(input.grantedScopes)
    const inserted = await trx
      .insertInto('grants')
      .values({
        user_id: userId,
        app_id: input.appId,
        requested_scopes: formatScopes(input.requestedScopes),
        granted_scopes: granted,
        scopes_source: input.scopesSource,
        status: 'active',
        status_reason: null,
        created_at: now,
        ended_at: null,
        superseded_by: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    const grantId = Number(inserted.id)
    const scopes = [...new Set(input.grantedScopes)]
    if (scopes.length)
      await trx
        .insertInto('grant_scopes')
        .values(scopes.map((scope) => ({ grant_id: grantId, scope })))
        .execute()
    await storeTokens(trx, cipher, grantId, input.tokens, now)

    // One active grant per user: the previous one is superseded and its tokens queued for
    // revocation at Carta (RFC 7009); the lifecycle worker sends them after this commits.
    for (const old of previous) {
      await trx
        .updateTable('grants')
        .set({ status: 'superseded', ended_at: now, superseded_by: grantId })
        .where('id', '=', old.id)
        .execute()
      // Revocation rows carry the ciphertext as is; the live copy goes (no unused secrets at rest).
      await enqueueGrantRevocation(trx, old.id, now)
      await trx.deleteFrom('grant_tokens').where('grant_id', '=', old.id).execute()
      await recordAudit(trx, now, {
        type: 'grant.superseded',
        actor,
        userId,
        grantId: old.id,
        appId: old.app_id,
        details: { supersededBy: grantId },
      })
    }
    await trx
      .updateTable('end_users')
      .set({ active_grant_id: grantId, status: 'connected', updated_at: now })
      .where('id', '=', userId)
      .execute()
    await recordAudit(trx, now, {
      type: 'grant.created',
      actor,
      userId,
      grantId,
      appId: input.appId,
      details: {
        app: input.appKey,
        requested: formatScopes(input.requestedScopes),
        granted,
        source: input.scopesSource,
        ...(input.linkId ? { linkId: input.linkId } : {}),
      },
    })
    await syncUserRollouts(trx, userId, now)
    if (input.linkId) {
      if (!(await consumeLink(trx, input.linkId, grantId, now)))
        throw new DomainError('connect.link_unavailable', 'The link was used or expired meanwhile.', {})
    }
    return { userId, grantId, supersededGrantId: previous.at(-1)?.id ?? null, createdLocalKey }
  })
}

async function targetUser(
  trx: Kysely<Database>,
  input: GrantInput,
): Promise<{ userId: number; createdLocalKey: string | null }> {
  if (input.expectedUserId) {
    // Link flow: the grant belongs to the link's user, provided Carta says it is the same person.
    const user = await findEndUser(trx, input.expectedUserId)
    if (!user) throw identityMismatch('the link’s user no longer exists')
    if (user.carta_user_id !== null) {
      if (!input.identity) throw identityMismatch('Carta identity not shared (read_user_info not granted)')
      if (input.identity.cartaUserId !== user.carta_user_id) throw identityMismatch('different Carta user')
      await trx
        .updateTable('end_users')
        .set({
          email: input.identity.email ?? user.email,
          name: input.identity.name ?? user.name,
          updated_at: input.now,
        })
        .where('id', '=', user.id)
        .execute()
    } else if (input.identity) {
      const other = await findEndUserByCartaId(trx, input.identity.cartaUserId)
      if (other && other.id !== user.id) throw identityMismatch('Carta user already belongs to another end user')
      await adoptIdentity(trx, user.id, input.identity, input.now)
    }
    return { userId: user.id, createdLocalKey: null }
  }
  const { user, createdLocalKey } = await resolveEndUser(trx, {
    identity: input.identity,
    localKey: input.localKey,
    now: input.now,
  })
  return { userId: user.id, createdLocalKey }
}
