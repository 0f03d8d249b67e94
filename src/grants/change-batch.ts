// Imported grants, a whole batch at a time (src/README.md, "Imports"). The rules are changeGrant's
// (change.ts: the grant row, supersede without revocation, the audit events, the webhook events)
// and the rollout membership's (membership.ts syncUsersRollouts: computeMembership, one summed
// counter upsert); only the statements differ: a few multi-row statements per batch instead of
// ~15 per row. recordImportedGrant is the same import one row at a time through changeGrant, kept
// as the reference the batch path is tested against (test/grants/change-batch.test.ts).
import { sql, type Transaction } from 'kysely'
import { type AuditEvent, recordAudits } from '../audit/events.js'
import type { TokenSet } from '../carta/oauth-client.js'
import { chunked, insertRows, integerPairs } from '../db/batch.js'
import type { Database } from '../db/schema.js'
import { syncUsersRollouts } from '../rollouts/membership.js'
import { formatScopes, parseScopes } from '../scopes.js'
import { anyActiveEndpoint, enqueueWebhookEvents, type WebhookEventInput } from '../webhooks/outbox.js'
import {
  changeGrant,
  createdEvent,
  type GrantChange,
  grantEventData,
  grantRow,
  lockUsers,
  supersededEvent,
  userCoveredData,
} from './change.js'
import type { TokenCipher } from './token-cipher.js'
import { sealedTokenRow } from './tokens.js'

type Trx = Transaction<Database>

/** One valid row of an import file, ready to record. */
export interface ImportedGrant {
  line: number
  cartaUserId: string
  email: string | null
  name: string | null
  app: { id: number; key: string }
  /** null: the file did not say (scopes_source unknown). */
  scopes: string[] | null
  /** When the user authorized (the row's granted_at, else the import time). */
  grantedAt: number
  tokens: TokenSet | null
  /** SHA-256 of the input row: the same row again changes nothing. */
  fingerprint: string
}

export interface ImportContext {
  /** 0 on a dry run (its rows are rolled back). */
  runId: number
  actor: string
}

export type ImportOutcome = 'created' | 'superseded' | 'unchanged'

/**
 * The same row again, or a row older than (or as old as) a grant the ledger already has for the
 * user: nothing to do. This is what makes re-running an interrupted import safe.
 */
export function importLeavesUnchanged(
  grants: Array<{ created_at: number; import_fingerprint: string | null }>,
  row: Pick<ImportedGrant, 'fingerprint' | 'grantedAt'>,
): boolean {
  return grants.some((g) => g.import_fingerprint === row.fingerprint || g.created_at >= row.grantedAt)
}

/** Identity the ledger lacked is filled in; what it has is kept (it came from Carta). */
export function identityFill(
  user: { email: string | null; name: string | null },
  row: Pick<ImportedGrant, 'email' | 'name'>,
): { email?: string; name?: string } {
  return {
    ...(user.email === null && row.email ? { email: row.email } : {}),
    ...(user.name === null && row.name ? { name: row.name } : {}),
  }
}

/** The grant change an imported row makes for `userId`. */
export function importedChange(
  row: ImportedGrant,
  userId: number,
  context: ImportContext,
): Extract<GrantChange, { kind: 'granted' }> {
  return {
    kind: 'granted',
    userId,
    app: row.app,
    requested: row.scopes ?? [],
    granted: row.scopes ?? [],
    source: row.scopes ? 'imported' : 'unknown',
    tokens: row.tokens,
    actor: context.actor,
    grantedAt: row.grantedAt,
    imported: { runId: context.runId, fingerprint: row.fingerprint },
    details: { line: row.line },
  }
}

function newUserRow(row: ImportedGrant, now: number) {
  return {
    carta_user_id: row.cartaUserId,
    local_key: null,
    email: row.email,
    name: row.name,
    active_grant_id: null,
    status: 'connected' as const,
    created_at: now,
    updated_at: now,
  }
}

/** One row through changeGrant: the reference for recordImportedGrants. */
export async function recordImportedGrant(
  trx: Trx,
  cipher: TokenCipher,
  row: ImportedGrant,
  context: ImportContext,
  now: number,
): Promise<ImportOutcome> {
  let user = await trx
    .selectFrom('end_users')
    .select(['id', 'email', 'name'])
    .where('carta_user_id', '=', row.cartaUserId)
    .executeTakeFirst()
  if (user) {
    const grants = await trx
      .selectFrom('grants')
      .select(['created_at', 'import_fingerprint'])
      .where('user_id', '=', user.id)
      .execute()
    if (importLeavesUnchanged(grants, row)) return 'unchanged'
    const fill = identityFill(user, row)
    if (Object.keys(fill).length)
      await trx
        .updateTable('end_users')
        .set({ ...fill, updated_at: now })
        .where('id', '=', user.id)
        .execute()
  } else {
    user = await trx
      .insertInto('end_users')
      .values(newUserRow(row, now))
      .returning(['id', 'email', 'name'])
      .executeTakeFirstOrThrow()
  }
  const result = await changeGrant(trx, cipher, importedChange(row, user.id, context), now)
  return result.supersededGrantId !== null ? 'superseded' : 'created'
}

/**
 * Records a batch of imported rows (distinct Carta user ids) inside the caller's transaction, with
 * the same rows and counters recordImportedGrant would write one by one. Returns each row's outcome.
 */
export async function recordImportedGrants(
  trx: Trx,
  cipher: TokenCipher,
  rows: ImportedGrant[],
  context: ImportContext,
  now: number,
): Promise<ImportOutcome[]> {
  if (rows.length === 0) return []
  // 1. The users the ledger already has, locked (in id order, as changeGrant locks a user first),
  //    and every grant of theirs.
  const users = new Map<string, { id: number; email: string | null; name: string | null }>()
  for (const ids of chunked(rows.map((r) => r.cartaUserId))) {
    const found = await trx
      .selectFrom('end_users')
      .select(['id', 'carta_user_id', 'email', 'name'])
      .where('carta_user_id', 'in', ids)
      .execute()
    for (const u of found) users.set(u.carta_user_id!, u)
  }
  const existingIds = [...users.values()].map((u) => u.id)
  await lockUsers(trx, existingIds)
  const grantsOf = new Map<
    number,
    Array<{ id: number; app_id: number; status: string; created_at: number; import_fingerprint: string | null }>
  >()
  for (const ids of chunked(existingIds)) {
    const found = await trx
      .selectFrom('grants')
      .select(['id', 'user_id', 'app_id', 'status', 'created_at', 'import_fingerprint'])
      .where('user_id', 'in', ids)
      .orderBy('id')
      .execute()
    for (const g of found) {
      const list = grantsOf.get(g.user_id)
      if (list) list.push(g)
      else grantsOf.set(g.user_id, [g])
    }
  }

  // 2. What each row does.
  const outcomes: ImportOutcome[] = []
  const todo: Array<{ row: ImportedGrant; previous: Array<{ id: number; app_id: number }> }> = []
  const fills: Array<{ id: number; fill: { email?: string; name?: string } }> = []
  const fresh: ImportedGrant[] = []
  for (const row of rows) {
    const user = users.get(row.cartaUserId)
    if (user) {
      const grants = grantsOf.get(user.id) ?? []
      if (importLeavesUnchanged(grants, row)) {
        outcomes.push('unchanged')
        continue
      }
      const fill = identityFill(user, row)
      if (Object.keys(fill).length) fills.push({ id: user.id, fill })
      const previous = grants.filter((g) => g.status === 'active')
      outcomes.push(previous.length ? 'superseded' : 'created')
      todo.push({ row, previous })
    } else {
      outcomes.push('created')
      todo.push({ row, previous: [] })
      fresh.push(row)
    }
  }
  if (todo.length === 0) return outcomes

  // 3. Users: identity filled in (rare: one UPDATE each), new ones inserted.
  for (const { id, fill } of fills)
    await trx
      .updateTable('end_users')
      .set({ ...fill, updated_at: now })
      .where('id', '=', id)
      .execute()
  const insertedUsers = await insertRows<'end_users', { id: number; carta_user_id: string }>(
    trx,
    'end_users',
    fresh.map((row) => newUserRow(row, now)),
    'returning id, carta_user_id',
  )
  for (const u of insertedUsers) users.set(u.carta_user_id, { id: u.id, email: null, name: null })

  // 4. The grants (each user has one row in the batch, so user_id maps a returned id to its row).
  const changes = todo.map(({ row }) => importedChange(row, users.get(row.cartaUserId)!.id, context))
  const grantIds = new Map<number, number>()
  const insertedGrants = await insertRows<'grants', { id: number; user_id: number }>(
    trx,
    'grants',
    changes.map((change) => grantRow(change, now)),
    'returning id, user_id',
  )
  for (const g of insertedGrants) grantIds.set(g.user_id, g.id)
  const grantOf = (change: (typeof changes)[number]) => grantIds.get(change.userId)!
  const scopes = changes.flatMap((change) =>
    parseScopes(formatScopes(change.granted)).map((scope) => ({ grant_id: grantOf(change), scope })),
  )
  await insertRows(trx, 'grant_scopes', scopes)
  const tokens = changes.flatMap((change) =>
    change.tokens ? [sealedTokenRow(cipher, grantOf(change), change.tokens, now)] : [],
  )
  await insertRows(trx, 'grant_tokens', tokens)

  // 5. Supersede: one active grant per user, tokens not revoked (revokesSuperseded) but the live
  //    copy deleted; then each user's active grant is the new one. One UPDATE … FROM a list of
  //    (id, new grant) pairs per statement instead of one UPDATE per row; the repeated IN list lets
  //    SQLite's planner look the rows up by key instead of scanning the table against the pairs.
  const superseded = todo.flatMap(({ previous }, i) => previous.map((g) => [g.id, grantOf(changes[i]!)] as const))
  for (const pairs of chunked(superseded, 3)) {
    await sql`update grants set status = 'superseded', ended_at = ${now}, superseded_by = v.new_id
      from ${integerPairs(pairs, 'old_id', 'new_id')} as v
      where grants.id = v.old_id and grants.id in (${sql.join(pairs.map(([id]) => id))})`.execute(trx)
    await trx
      .deleteFrom('grant_tokens')
      .where(
        'grant_id',
        'in',
        pairs.map(([id]) => id),
      )
      .execute()
  }
  const changedUsers = changes.map((c) => c.userId)
  for (const pairs of chunked(
    changes.map((c) => [c.userId, grantOf(c)] as const),
    3,
  ))
    await sql`update end_users set active_grant_id = v.grant_id, status = 'connected', updated_at = ${now}
      from ${integerPairs(pairs, 'user_id', 'grant_id')} as v
      where end_users.id = v.user_id and end_users.id in (${sql.join(pairs.map(([id]) => id))})`.execute(trx)

  // 6. Audit events in the order changeGrant writes them: each superseded grant, then the new one.
  const events: AuditEvent[] = []
  todo.forEach(({ previous }, i) => {
    const change = changes[i]!
    for (const old of previous) events.push(supersededEvent(change, old, grantOf(change)))
    events.push(createdEvent(change, grantOf(change)))
  })
  await recordAudits(trx, now, events)

  // 7. Rollout membership and counters, then the webhook events changeGrant would enqueue.
  const listened = await anyActiveEndpoint(trx)
  const newly = await syncUsersRollouts(trx, changedUsers)
  if (listened) {
    const rolloutNames = new Map(
      (await trx.selectFrom('rollouts').select(['id', 'name']).where('status', '=', 'active').execute()).map((r) => [
        r.id,
        r.name,
      ]),
    )
    const coveredBy = new Map<number, number[]>()
    for (const { userId, rolloutId } of newly) coveredBy.set(userId, [...(coveredBy.get(userId) ?? []), rolloutId])
    const webhookEvents: WebhookEventInput[] = []
    for (const change of changes) {
      const grantId = grantOf(change)
      const granted = formatScopes(change.granted)
      webhookEvents.push({
        type: 'grant.created',
        userId: change.userId,
        data: grantEventData(grantId, {
          app: change.app.key,
          status: 'active',
          granted_scopes: granted,
          scopes_source: change.source,
        }),
      })
      for (const rolloutId of coveredBy.get(change.userId) ?? [])
        webhookEvents.push({
          type: 'rollout.user_covered',
          userId: change.userId,
          data: userCoveredData({ id: rolloutId, name: rolloutNames.get(rolloutId)! }, grantId, granted),
        })
    }
    await enqueueWebhookEvents(trx, webhookEvents, now)
  }
  return outcomes
}
