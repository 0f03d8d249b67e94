// Every change to a user's grants goes through changeGrant(), inside the caller's transaction: the
// grant rows, the user's active grant and status, the audit event, and what depends on them —
// the rollout membership and its counters, and the webhook outbox (src/README.md, "Grants"). A new
// consequence of a grant change is added here, once, and no caller can miss it.
import type { Transaction } from 'kysely'
import { type AuditEvent, recordAudit } from '../audit/events.js'
import type { TokenSet } from '../carta/oauth-client.js'
import { lockUserRows } from '../db/dialect.js'
import type { Database, GrantStatus } from '../db/schema.js'
import { syncUserRollouts } from '../rollouts/membership.js'
import { formatScopes, parseScopes, sameScopes } from '../scopes.js'
import { anyActiveEndpoint, coveredRollouts, enqueueWebhookEvent } from '../webhooks/outbox.js'
import { enqueueGrantRevocation } from './revocation.js'
import type { TokenCipher } from './token-cipher.js'
import { storeTokens } from './tokens.js'

type Trx = Transaction<Database>

export type GrantChange =
  /** A new authorization: the user's new active grant; any previous one is superseded. */
  | {
      kind: 'granted'
      userId: number
      app: { id: number; key: string }
      requested: string[]
      granted: string[]
      /**
       * reported: the token response listed the scopes; assumed: it did not (RFC 6749 §5.1);
       * imported / unknown: an import file listed them / did not (src/README.md, "Imports").
       */
      source: 'reported' | 'assumed' | 'imported' | 'unknown'
      /** Null: an imported grant whose tokens the integrator did not hand over. */
      tokens: TokenSet | null
      actor: string
      /** When the user authorized, if earlier than now (an imported grant's granted_at). */
      grantedAt?: number
      /** Set by an import: the run and the fingerprint of the row (same row again: no change). */
      imported?: { runId: number; fingerprint: string }
      /** Extra facts for the grant.created event (e.g. the link it came through). */
      details?: Record<string, unknown>
    }
  /**
   * The token now holds other scopes: a refresh reported them (RFC 6749 §5.1), or discovery
   * proved them by calling Carta with the token (`evidence`: what each probe answered).
   */
  | { kind: 'scopes'; grantId: number; scopes: string[]; via: 'refresh' }
  | { kind: 'scopes'; grantId: number; scopes: string[]; via: 'probe'; evidence: unknown[] }
  /** Carta will not refresh it any more (invalid_grant, RFC 6749 §5.2, or no refresh token). */
  | { kind: 'broken'; grantId: number; reason: string }
  /** An operator revoked it: its tokens are queued for revocation at Carta (RFC 7009). */
  | { kind: 'revoked'; grantId: number; actor: string }

export interface GrantChangeResult {
  userId: number
  grantId: number
  /** False when nothing needed writing (the grant had already ended, or its scopes are the same). */
  changed: boolean
  /** 'granted': the grant it replaced, whose tokens were queued for revocation. */
  supersededGrantId: number | null
  /** Token revocations queued by this change. */
  queuedRevocations: number
}

export async function changeGrant(
  trx: Trx,
  cipher: TokenCipher,
  change: GrantChange,
  now: number,
): Promise<GrantChangeResult> {
  await lockUser(trx, change)
  const result = await apply(trx, cipher, change, now)
  if (!result.changed) return result
  // Webhook events land in the outbox with the change itself (at-least-once after the commit).
  const listened = await anyActiveEndpoint(trx)
  const coveredBefore = listened ? await coveredRollouts(trx, result.userId) : new Set<number>()
  // What depends on a user's grants, kept in step in the same transaction.
  await syncUserRollouts(trx, result.userId)
  if (listened) await enqueueGrantEvents(trx, change, result, coveredBefore, now)
  return result
}

/**
 * Takes the user's row lock first (db/dialect.ts lockUserRows), so two
 * changes for one user run one after the other: the second sees the first's active grant and
 * supersedes it instead of both staying active. Locks are then taken in one order everywhere: the
 * user, the grants, the counters (membership.ts, sorted).
 */
async function lockUser(trx: Trx, change: GrantChange): Promise<void> {
  const userId =
    change.kind === 'granted'
      ? change.userId
      : (await trx.selectFrom('grants').select('user_id').where('id', '=', change.grantId).executeTakeFirst())?.user_id
  if (userId === undefined) return
  await lockUsers(trx, [userId])
}

/** The row lock of each user (lockUser; an import batch takes its users' locks in id order). */
export async function lockUsers(trx: Trx, userIds: number[]): Promise<void> {
  await lockUserRows(trx, userIds)
}

/** The grant.* event of the change, and rollout.user_covered for each rollout the user now covers. */
async function enqueueGrantEvents(
  trx: Trx,
  change: GrantChange,
  result: GrantChangeResult,
  coveredBefore: Set<number>,
  now: number,
): Promise<void> {
  const grant = await trx
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select(['grants.granted_scopes', 'grants.scopes_source', 'grants.status', 'oauth_apps.key as app'])
    .where('grants.id', '=', result.grantId)
    .executeTakeFirstOrThrow()
  const type = (
    {
      granted: 'grant.created',
      scopes: 'grant.scopes_changed',
      broken: 'grant.broken',
      revoked: 'grant.revoked',
    } as const
  )[change.kind]
  await enqueueWebhookEvent(
    trx,
    {
      type,
      userId: result.userId,
      data: {
        ...grantEventData(result.grantId, grant),
        ...(change.kind === 'broken' ? { reason: change.reason } : {}),
      },
    },
    now,
  )
  const coveredAfter = await coveredRollouts(trx, result.userId)
  const newly = [...coveredAfter].filter((id) => !coveredBefore.has(id))
  if (newly.length === 0) return
  const rollouts = await trx
    .selectFrom('rollouts')
    .select(['id', 'name'])
    .where('id', 'in', newly)
    .orderBy('id')
    .execute()
  for (const rollout of rollouts) {
    await enqueueWebhookEvent(
      trx,
      {
        type: 'rollout.user_covered',
        userId: result.userId,
        data: userCoveredData(rollout, result.grantId, grant.granted_scopes),
      },
      now,
    )
  }
}

async function apply(trx: Trx, cipher: TokenCipher, change: GrantChange, now: number): Promise<GrantChangeResult> {
  switch (change.kind) {
    case 'granted':
      return grant(trx, cipher, change, now)
    case 'scopes':
      return changeScopes(trx, change, now)
    case 'broken':
    case 'revoked':
      return end(trx, change, now)
  }
}

async function grant(
  trx: Trx,
  cipher: TokenCipher,
  change: Extract<GrantChange, { kind: 'granted' }>,
  now: number,
): Promise<GrantChangeResult> {
  const { userId } = change
  const previous = await trx
    .selectFrom('grants')
    .select(['id', 'app_id'])
    .where('user_id', '=', userId)
    .where('status', '=', 'active')
    .execute()
  const row = grantRow(change, now)
  const granted = row.granted_scopes
  const { id: grantId } = await trx.insertInto('grants').values(row).returning('id').executeTakeFirstOrThrow()
  const scopes = parseScopes(granted)
  if (scopes.length)
    await trx
      .insertInto('grant_scopes')
      .values(scopes.map((scope) => ({ grant_id: grantId, scope })))
      .execute()
  if (change.tokens) await storeTokens(trx, cipher, grantId, change.tokens, now)

  // One active grant per user: the previous one is superseded and its tokens queued for
  // revocation at Carta (RFC 7009); the revocation job sends them after this commits. An import
  // revokes nothing (revokesSuperseded); the live copy goes either way (src/README.md, "Imports").
  const revoke = revokesSuperseded(change)
  let queued = 0
  for (const old of previous) {
    await trx
      .updateTable('grants')
      .set({ status: 'superseded', ended_at: now, superseded_by: grantId })
      .where('id', '=', old.id)
      .execute()
    // Revocation rows carry the ciphertext as is; the live copy goes (no unused secrets at rest).
    if (revoke) queued += await enqueueGrantRevocation(trx, old.id, now)
    await trx.deleteFrom('grant_tokens').where('grant_id', '=', old.id).execute()
    await recordAudit(trx, now, supersededEvent(change, old, grantId))
  }
  await trx
    .updateTable('end_users')
    .set({ active_grant_id: grantId, status: 'connected', updated_at: now })
    .where('id', '=', userId)
    .execute()
  await recordAudit(trx, now, createdEvent(change, grantId))
  return {
    userId,
    grantId,
    changed: true,
    supersededGrantId: previous.at(-1)?.id ?? null,
    queuedRevocations: queued,
  }
}

type Granted = Extract<GrantChange, { kind: 'granted' }>

// The rules of a new grant, shared by grant() and the import's batch path (change-batch.ts).

/** The grants row of a new grant. */
export function grantRow(change: Granted, now: number) {
  return {
    user_id: change.userId,
    app_id: change.app.id,
    requested_scopes: formatScopes(change.requested),
    granted_scopes: formatScopes(change.granted),
    scopes_source: change.source,
    status: 'active' as const,
    status_reason: null,
    created_at: change.grantedAt ?? now,
    ended_at: null,
    superseded_by: null,
    import_run_id: change.imported?.runId ?? null,
    import_fingerprint: change.imported?.fingerprint ?? null,
  }
}

/**
 * Whether the superseded grant's tokens are queued for revocation at Carta (RFC 7009). An import
 * revokes nothing: the integrator may still use the older tokens, and revoking one may revoke
 * every token of the same authorization (RFC 7009 §2.1), the imported one included.
 */
export function revokesSuperseded(change: Granted): boolean {
  return !change.imported
}

export function supersededEvent(change: Granted, old: { id: number; app_id: number }, grantId: number): AuditEvent {
  return {
    type: 'grant.superseded',
    actor: change.actor,
    userId: change.userId,
    grantId: old.id,
    appId: old.app_id,
    details: { supersededBy: grantId, ...(revokesSuperseded(change) ? {} : { tokensRevoked: false }) },
  }
}

export function createdEvent(change: Granted, grantId: number): AuditEvent {
  return {
    type: 'grant.created',
    actor: change.actor,
    userId: change.userId,
    grantId,
    appId: change.app.id,
    details: {
      app: change.app.key,
      requested: formatScopes(change.requested),
      granted: formatScopes(change.granted),
      source: change.source,
      ...(change.grantedAt !== undefined ? { grantedAt: new Date(change.grantedAt).toISOString() } : {}),
      ...(change.imported ? { importRunId: change.imported.runId, tokens: change.tokens !== null } : {}),
      ...change.details,
    },
  }
}

/** The data of a grant.* webhook event (never a token). */
export function grantEventData(
  grantId: number,
  grant: { app: string; status: string; granted_scopes: string; scopes_source: string },
) {
  return {
    grantId,
    app: grant.app,
    status: grant.status,
    scopes: parseScopes(grant.granted_scopes),
    scopesSource: grant.scopes_source,
  }
}

/** The data of a rollout.user_covered webhook event. */
export function userCoveredData(rollout: { id: number; name: string }, grantId: number, grantedScopes: string) {
  return { rolloutId: rollout.id, rolloutName: rollout.name, grantId, scopes: parseScopes(grantedScopes) }
}

async function changeScopes(
  trx: Trx,
  change: Extract<GrantChange, { kind: 'scopes' }>,
  now: number,
): Promise<GrantChangeResult> {
  const grant = await trx
    .selectFrom('grants')
    .select(['user_id', 'app_id', 'granted_scopes', 'scopes_source'])
    .where('id', '=', change.grantId)
    .executeTakeFirstOrThrow()
  const before = parseScopes(grant.granted_scopes)
  const after = parseScopes(change.scopes.join(' '))
  const unchanged = { userId: grant.user_id, grantId: change.grantId, supersededGrantId: null, queuedRevocations: 0 }
  const source = change.via === 'probe' ? 'probed' : 'reported'
  // An unknown set that probing found empty is still news: the source moves from unknown.
  if (sameScopes(before, after) && (change.via === 'refresh' || grant.scopes_source === source))
    return { ...unchanged, changed: false }
  await trx
    .updateTable('grants')
    .set({ granted_scopes: formatScopes(after), scopes_source: source })
    .where('id', '=', change.grantId)
    .execute()
  await trx.deleteFrom('grant_scopes').where('grant_id', '=', change.grantId).execute()
  if (after.length > 0)
    await trx
      .insertInto('grant_scopes')
      .values(after.map((scope) => ({ grant_id: change.grantId, scope })))
      .execute()
  await recordAudit(trx, now, {
    type: 'grant.scopes_changed',
    actor: 'system',
    userId: grant.user_id,
    grantId: change.grantId,
    appId: grant.app_id,
    details: {
      before,
      after,
      removed: before.filter((s) => !after.includes(s)),
      added: after.filter((s) => !before.includes(s)),
      via: change.via,
      ...(change.via === 'probe' ? { previousSource: grant.scopes_source, evidence: change.evidence } : {}),
    },
  })
  return { ...unchanged, changed: true }
}

async function end(
  trx: Trx,
  change: Extract<GrantChange, { kind: 'broken' | 'revoked' }>,
  now: number,
): Promise<GrantChangeResult> {
  const grant = await trx
    .selectFrom('grants')
    .select(['id', 'user_id', 'app_id', 'status'])
    .where('id', '=', change.grantId)
    .executeTakeFirstOrThrow()
  const unchanged = { userId: grant.user_id, grantId: grant.id, supersededGrantId: null, queuedRevocations: 0 }
  // Only a live grant breaks; an operator may also revoke one that already broke.
  const endable: GrantStatus[] = change.kind === 'broken' ? ['active'] : ['active', 'broken']
  if (!endable.includes(grant.status)) return { ...unchanged, changed: false }

  let queued = 0
  if (change.kind === 'revoked') {
    // Revoked here means unusable here too: queue the tokens for Carta and drop the live copy.
    queued = await enqueueGrantRevocation(trx, grant.id, now)
    await trx.deleteFrom('grant_tokens').where('grant_id', '=', grant.id).execute()
  }
  const reason = change.kind === 'broken' ? change.reason : `revoked by ${change.actor}`
  await trx
    .updateTable('grants')
    .set({ status: change.kind, status_reason: reason, ended_at: now })
    .where('id', '=', grant.id)
    .where('status', 'in', endable)
    .execute()
  const user = await trx
    .selectFrom('end_users')
    .select(['id', 'active_grant_id'])
    .where('id', '=', grant.user_id)
    .executeTakeFirstOrThrow()
  if (user.active_grant_id === grant.id) {
    await trx
      .updateTable('end_users')
      .set({ status: 'needs_reconnect', updated_at: now })
      .where('id', '=', user.id)
      .execute()
  }
  await recordAudit(
    trx,
    now,
    change.kind === 'broken'
      ? {
          type: 'grant.broken',
          actor: 'system',
          userId: grant.user_id,
          grantId: grant.id,
          appId: grant.app_id,
          details: { reason },
        }
      : {
          type: 'grant.revoked_by_operator',
          actor: change.actor,
          userId: grant.user_id,
          grantId: grant.id,
          appId: grant.app_id,
          details: { previousStatus: grant.status, queuedRevocations: queued },
        },
  )
  return { ...unchanged, changed: true, queuedRevocations: queued }
}
