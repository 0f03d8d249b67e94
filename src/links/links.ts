// Reauthorization links: signed, expiring, single-use URLs for one user and one rollout.
//
// Token = base64url(linkId as 8 bytes ‖ 16-byte random nonce) "." base64url(HMAC-SHA256).
// The row keeps the nonce, never the URL or the key; the URL can be rebuilt from the row and the
// server-side secret (for the operator's copy box). The MAC makes ids unguessable and untamperable;
// the nonce, checked against the row, makes a link from a deleted-and-reused id worthless.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Kysely, Selectable, Transaction } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/schema.js'
import { recordAudit } from '../audit/events.js'
import { csvLine } from '../csv.js'
import { DomainError } from '../errors.js'
import { parseScopes } from '../scopes.js'
import { DAY_MS } from '../time.js'
import { type LackingFilter, type LackingRow, listLacking } from '../rollouts/lacking.js'
import { enqueueWebhookEvent } from '../webhooks/outbox.js'
import type { ReauthLinkTable } from './tables.js'

export type LinkRow = Selectable<ReauthLinkTable>
/**
 * What is known about a link, newest fact first: used, revoked, expired; while it still works,
 * opened (its page was viewed), emailed (the outbox delivered it to the SMTP server) or only issued.
 * Nothing is called "sent" unless it was emailed.
 */
export type LinkState = 'issued' | 'emailed' | 'opened' | 'used' | 'expired' | 'revoked'
/** States of a link that still works. */
export const OPEN_LINK_STATES: readonly LinkState[] = ['issued', 'emailed', 'opened']

const NONCE_BYTES = 16
const PAYLOAD_CHARS = 32 // base64url of 24 bytes, no padding
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/
// Domain separation: this key signs nothing else, but a prefix keeps it that way if reused.
const MAC_CONTEXT = 'scope-ledger/reauth-link/v1\n'

/** What signing and URL building need: the secret and the public base URL. */
export interface LinkContext {
  publicUrl: string
  secret: string
  ttlDays: number
  clock: Clock
}

export function linkContextFrom(config: Config, clock: Clock): LinkContext {
  return { publicUrl: config.publicUrl, secret: config.linkSigningSecret, ttlDays: config.linkTtlDays, clock }
}

// --- token ---------------------------------------------------------------------------------------

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret).update(MAC_CONTEXT).update(payload).digest()
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url')
}

export function signLinkToken(secret: string, linkId: number, nonce: string): string {
  const nonceBytes = Buffer.from(nonce, 'base64url')
  if (nonceBytes.length !== NONCE_BYTES) throw new Error('link nonce must be 16 bytes of base64url')
  const id = Buffer.alloc(8)
  id.writeBigUInt64BE(BigInt(linkId))
  const payload = Buffer.concat([id, nonceBytes]).toString('base64url')
  return `${payload}.${mac(secret, payload).toString('base64url')}`
}

/**
 * The link id and nonce a token carries, or null when it is malformed or its MAC is wrong.
 * Compares MACs in constant time; insists on canonical base64url so that no second spelling of
 * a valid token exists (the last character of a 43-char MAC carries 2 ignored bits).
 */
export function verifyLinkToken(secret: string, token: string): { linkId: number; nonce: string } | null {
  if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return null
  const [payload, given] = token.split('.') as [string, string]
  const givenBytes = Buffer.from(given, 'base64url')
  if (givenBytes.length !== 32 || givenBytes.toString('base64url') !== given) return null
  if (!timingSafeEqual(givenBytes, mac(secret, payload))) return null
  const bytes = Buffer.from(payload, 'base64url')
  if (bytes.length !== 8 + NONCE_BYTES || payload.length !== PAYLOAD_CHARS) return null
  const id = bytes.readBigUInt64BE(0)
  if (id < 1n || id > BigInt(Number.MAX_SAFE_INTEGER)) return null
  return { linkId: Number(id), nonce: bytes.subarray(8).toString('base64url') }
}

export function linkUrl(
  context: Pick<LinkContext, 'publicUrl' | 'secret'>,
  row: Pick<LinkRow, 'id' | 'nonce'>,
): string {
  return `${context.publicUrl}/reauthorize/${signLinkToken(context.secret, row.id, row.nonce)}`
}

export function linkState(
  row: Pick<LinkRow, 'used_at' | 'expires_at' | 'revoked_at' | 'opened_at' | 'emailed_at'>,
  now: number,
): LinkState {
  if (row.used_at !== null) return 'used'
  if (row.revoked_at) return 'revoked'
  if (row.expires_at <= now) return 'expired'
  if (row.opened_at) return 'opened'
  return row.emailed_at ? 'emailed' : 'issued'
}

// --- resolving a followed link -------------------------------------------------------------------

export type ResolvedLink =
  | { ok: true; link: LinkRow; rollout: { id: number; name: string; app_id: number } }
  | { ok: false; reason: 'tampered'; linkId: number | null }
  | { ok: false; reason: 'used' | 'expired' | 'archived' | 'revoked'; link: LinkRow }

/** Checks a token from a URL against the secret and the stored row (the public page and its POST). */
export async function resolveLink(
  db: Kysely<Database>,
  secret: string,
  token: string,
  now: number,
): Promise<ResolvedLink> {
  const claimed = verifyLinkToken(secret, token)
  if (!claimed) return { ok: false, reason: 'tampered', linkId: null }
  const link = await db.selectFrom('reauth_links').selectAll().where('id', '=', claimed.linkId).executeTakeFirst()
  // A valid MAC over a nonce the row does not hold: the row was deleted (rollout removed).
  if (!link || !equalStrings(link.nonce, claimed.nonce))
    return { ok: false, reason: 'tampered', linkId: claimed.linkId }
  if (link.used_at !== null) return { ok: false, reason: 'used', link }
  if (link.revoked_at) return { ok: false, reason: 'revoked', link }
  if (link.expires_at <= now) return { ok: false, reason: 'expired', link }
  const rollout = await db
    .selectFrom('rollouts')
    .select(['id', 'name', 'app_id', 'status'])
    .where('id', '=', link.rollout_id)
    .executeTakeFirst()
  if (rollout?.status !== 'active') return { ok: false, reason: 'archived', link }
  return { ok: true, link, rollout: { id: rollout.id, name: rollout.name, app_id: rollout.app_id } }
}

function equalStrings(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

/**
 * Marks the link used by `grantId` if it is still unused and unexpired and its rollout active;
 * false otherwise. Called inside the callback's grant transaction: a false answer rolls the whole
 * grant back. One conditional UPDATE, so of two concurrent callbacks exactly one wins (the row
 * lock makes the loser re-check `used_at` on PostgreSQL; SQLite serialises writers).
 * Writes the `link.used` audit event and webhook event in the same transaction.
 */
export async function consumeLink(
  db: Transaction<Database>,
  linkId: number,
  grantId: number,
  now: number,
): Promise<boolean> {
  const result = await db
    .updateTable('reauth_links')
    .set({ used_at: now, used_grant_id: grantId })
    .where('id', '=', linkId)
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .where('rollout_id', 'in', (eb) => eb.selectFrom('rollouts').select('id').where('status', '=', 'active'))
    .executeTakeFirst()
  if (Number(result.numUpdatedRows) !== 1) return false
  const link = await db
    .selectFrom('reauth_links')
    .select(['user_id', 'rollout_id'])
    .where('id', '=', linkId)
    .executeTakeFirstOrThrow()
  await recordAudit(db, now, {
    type: 'link.used',
    actor: `user:${link.user_id}`,
    userId: link.user_id,
    grantId,
    rolloutId: link.rollout_id,
    details: { linkId },
  })
  // Outbox row in the same transaction (src/webhooks/outbox.ts).
  await enqueueWebhookEvent(
    db,
    { type: 'link.used', userId: link.user_id, data: { linkId, rolloutId: link.rollout_id, grantId } },
    now,
  )
  return true
}

// --- what happened to a link (honest states, the funnel) -----------------------------------------

/** The link's page was viewed (the first time counts). */
export async function markLinkOpened(db: Kysely<Database>, linkId: number, now: number): Promise<void> {
  await db
    .updateTable('reauth_links')
    .set({ opened_at: now })
    .where('id', '=', linkId)
    .where('opened_at', 'is', null)
    .execute()
}

/** The person pressed the link's button and went on to Carta. */
export async function markLinkContinued(db: Kysely<Database>, linkId: number, now: number): Promise<void> {
  await db
    .updateTable('reauth_links')
    .set({ continued_at: now })
    .where('id', '=', linkId)
    .where('continued_at', 'is', null)
    .execute()
}

/** An attempt through the link ended without a grant: declined at Carta, or another Carta identity. */
export async function markLinkOutcome(
  db: Kysely<Database>,
  linkId: number,
  outcome: 'declined' | 'identity_mismatch',
  now: number,
): Promise<void> {
  await db
    .updateTable('reauth_links')
    .set({ outcome, outcome_at: now })
    .where('id', '=', linkId)
    .where('used_at', 'is', null)
    .execute()
}

/**
 * Revokes a link that still works (an operator's decision, audited): its URL stops working at once.
 * Throws when the link is unknown; false when it no longer worked anyway.
 */
export async function revokeLink(
  db: Kysely<Database>,
  input: { linkId: number; rolloutId: number; revokedBy: string },
  now: number,
): Promise<{ revoked: boolean; userId: number }> {
  return db.transaction().execute(async (trx) => {
    const link = await trx
      .selectFrom('reauth_links')
      .select(['id', 'user_id'])
      .where('id', '=', input.linkId)
      .where('rollout_id', '=', input.rolloutId)
      .executeTakeFirst()
    if (!link) throw new DomainError('link.not_found', `There is no link ${input.linkId} in this rollout.`, {})
    const result = await trx
      .updateTable('reauth_links')
      .set({ revoked_at: now, revoked_by: input.revokedBy })
      .where('id', '=', input.linkId)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst()
    const revoked = Number(result.numUpdatedRows) === 1
    if (revoked)
      await recordAudit(trx, now, {
        type: 'link.revoked',
        actor: input.revokedBy,
        userId: link.user_id,
        rolloutId: input.rolloutId,
        details: { linkId: input.linkId },
      })
    return { revoked, userId: link.user_id }
  })
}

// --- issuing -------------------------------------------------------------------------------------

export interface IssuedLink {
  link: LinkRow
  url: string
  /** True when an unexpired, unused link already existed and is handed out again. */
  reused: boolean
}

/** The row of a fresh link: its own nonce, expiring LINK_TTL_DAYS from now, unused. */
function newLinkRow(context: LinkContext, rolloutId: number, userId: number, issuedBy: string, now: number) {
  return {
    rollout_id: rolloutId,
    user_id: userId,
    nonce: newNonce(),
    issued_by: issuedBy,
    issued_at: now,
    expires_at: now + context.ttlDays * DAY_MS,
    used_at: null,
    used_grant_id: null,
    emailed_at: null,
    opened_at: null,
    continued_at: null,
    outcome: null,
    outcome_at: null,
    revoked_at: null,
    revoked_by: null,
  }
}

async function activeRollout(
  db: Kysely<Database>,
  rolloutId: number,
): Promise<{ id: number; name: string; app_id: number; required_scopes: string }> {
  const rollout = await db
    .selectFrom('rollouts')
    .select(['id', 'name', 'app_id', 'status', 'required_scopes'])
    .where('id', '=', rolloutId)
    .executeTakeFirst()
  if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
  if (rollout.status !== 'active')
    throw new DomainError('rollout.archived', `Rollout "${rollout.name}" is archived; it issues no more links.`, {
      rolloutId,
    })
  return rollout
}

/**
 * Issues one link for a user of a rollout, or hands back the unexpired unused one that exists
 * (links are not multiplied: each outstanding link is one more URL that works).
 */
export async function issueLink(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; userId: number; issuedBy: string },
): Promise<IssuedLink> {
  const now = context.clock.now()
  return db.transaction().execute(async (trx) => {
    await activeRollout(trx, input.rolloutId)
    const user = await trx.selectFrom('end_users').select('id').where('id', '=', input.userId).executeTakeFirst()
    if (!user) throw new DomainError('user.not_found', `There is no user ${input.userId}.`, { userId: input.userId })
    const existing = await outstandingLink(trx, input.rolloutId, input.userId, now)
    if (existing) return { link: existing, url: linkUrl(context, existing), reused: true }
    const values = newLinkRow(context, input.rolloutId, input.userId, input.issuedBy, now)
    const { id } = await trx.insertInto('reauth_links').values(values).returning('id').executeTakeFirstOrThrow()
    const link: LinkRow = { id: Number(id), ...values }
    await recordAudit(trx, now, {
      type: 'link.issued',
      actor: input.issuedBy,
      userId: input.userId,
      rolloutId: input.rolloutId,
      details: { linkId: link.id, expiresAt: link.expires_at },
    })
    return { link, url: linkUrl(context, link), reused: false }
  })
}

async function outstandingLink(
  db: Kysely<Database>,
  rolloutId: number,
  userId: number,
  now: number,
): Promise<LinkRow | undefined> {
  return db
    .selectFrom('reauth_links')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst()
}

/** The newest link of each given user in a rollout (for the rollout page's rows). */
export async function latestLinks(
  db: Kysely<Database>,
  rolloutId: number,
  userIds: number[],
  context: LinkContext,
): Promise<Map<number, { state: LinkState; url: string | null; expiresAt: number; issuedAt: number }>> {
  const result = new Map<number, { state: LinkState; url: string | null; expiresAt: number; issuedAt: number }>()
  if (userIds.length === 0) return result
  const now = context.clock.now()
  const rows = await db
    .selectFrom('reauth_links')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .where('user_id', 'in', [...new Set(userIds)])
    .orderBy('id', 'asc')
    .execute()
  // Ascending ids: the last row seen per user is the newest.
  for (const row of rows) {
    const state = linkState(row, now)
    result.set(row.user_id, {
      state,
      // Only a link that still works is worth copying.
      url: OPEN_LINK_STATES.includes(state) ? linkUrl(context, row) : null,
      expiresAt: row.expires_at,
      issuedAt: row.issued_at,
    })
  }
  return result
}

/** One user's links in a rollout, for the operator's link page; throws when either is unknown. */
export async function userLinks(db: Kysely<Database>, context: LinkContext, rolloutId: number, userId: number) {
  const rollout = await db
    .selectFrom('rollouts')
    .select(['id', 'name', 'status'])
    .where('id', '=', rolloutId)
    .executeTakeFirst()
  if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
  const user = await db
    .selectFrom('end_users')
    .select(['id', 'carta_user_id', 'email', 'name'])
    .where('id', '=', userId)
    .executeTakeFirst()
  if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
  const member = await db
    .selectFrom('rollout_members')
    .select(['state', 'missing_scopes'])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  const links = await db
    .selectFrom('reauth_links')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .orderBy('id', 'desc')
    .limit(20)
    .execute()
  const now = context.clock.now()
  const latest = (await latestLinks(db, rolloutId, [userId], context)).get(userId) ?? null
  return {
    rollout,
    user,
    member: member ? { state: member.state, missing: parseScopes(member.missing_scopes) } : null,
    links: links.map((l) => ({ ...l, state: linkState(l, now) })),
    latest,
  }
}

// --- bulk and CSV over the lacking list's filter -------------------------------------------------
// The rollout page's filter (scope, app, q) is parsed and walked by src/rollouts/lacking.ts, so
// bulk issue and the CSV cover exactly the users the operator sees listed.

export interface BulkResult {
  matched: number
  issued: number
  reused: number
}

const BATCH = 500

export type LinkedRow = LackingRow & { link: LinkRow }
/** A row of the read-only export: the user's outstanding link, if there is one. */
export type MaybeLinkedRow = LackingRow & { link: LinkRow | null }

/**
 * Ensures every user matching the filter has an outstanding link, page by page of the lacking
 * list (keyset, by user id), with one short transaction per page so a large rollout never holds
 * the writer for long. `onBatch` sees each page with its links (the CSV export writes rows from
 * it) outside the transaction. Audited once by the caller.
 */
export async function ensureLinksForFilter(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; filter: LackingFilter; issuedBy: string },
  onBatch?: (rows: LinkedRow[]) => void | Promise<void>,
): Promise<BulkResult> {
  const now = context.clock.now()
  await activeRollout(db, input.rolloutId)
  const filter: LackingFilter = { ...input.filter, sort: 'user' }
  const totals: BulkResult = { matched: 0, issued: 0, reused: 0 }
  let after: string | undefined
  for (;;) {
    const page = await listLacking(db, input.rolloutId, filter, { limit: BATCH, ...(after ? { after } : {}) })
    if (page.rows.length === 0) break
    const batch = await db.transaction().execute(async (trx) => {
      const ids = page.rows.map((m) => m.userId)
      const existing = await trx
        .selectFrom('reauth_links')
        .selectAll()
        .where('rollout_id', '=', input.rolloutId)
        .where('user_id', 'in', ids)
        .where('used_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .orderBy('id', 'asc')
        .execute()
      const byUser = new Map(existing.map((row) => [row.user_id, row]))
      const fresh = page.rows
        .filter((m) => !byUser.has(m.userId))
        .map((m) => newLinkRow(context, input.rolloutId, m.userId, input.issuedBy, now))
      if (fresh.length > 0) {
        const inserted = await trx.insertInto('reauth_links').values(fresh).returning(['id', 'user_id']).execute()
        const idByUser = new Map(inserted.map((r) => [r.user_id, Number(r.id)]))
        for (const values of fresh) byUser.set(values.user_id, { id: idByUser.get(values.user_id)!, ...values })
      }
      totals.matched += page.rows.length
      totals.issued += fresh.length
      totals.reused += page.rows.length - fresh.length
      return page.rows.map((m) => ({ ...m, link: byUser.get(m.userId)! }))
    })
    if (onBatch) await onBatch(batch)
    if (!page.nextCursor) break
    after = page.nextCursor
  }
  return totals
}

export async function issueLinksBulk(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; filter: LackingFilter; issuedBy: string },
): Promise<BulkResult> {
  const result = await ensureLinksForFilter(db, context, input)
  await recordAudit(db, context.clock.now(), {
    type: 'links.issued_bulk',
    actor: input.issuedBy,
    rolloutId: input.rolloutId,
    details: { ...result, filter: input.filter },
  })
  return result
}

// --- CSV -----------------------------------------------------------------------------------------

export const CSV_HEADER = ['user_id', 'carta_user_id', 'email', 'missing_scopes', 'link_url', 'expires_at']

/**
 * Pages through the users matching the filter with their outstanding links, writing nothing (a
 * GET download must not change state, RFC 9110 §9.2.1). Users without a link come with null.
 */
export async function readLinksForFilter(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; filter: LackingFilter },
  onBatch: (rows: MaybeLinkedRow[]) => void | Promise<void>,
): Promise<{ matched: number; withoutLink: number }> {
  const now = context.clock.now()
  const filter: LackingFilter = { ...input.filter, sort: 'user' }
  const totals = { matched: 0, withoutLink: 0 }
  let after: string | undefined
  for (;;) {
    const page = await listLacking(db, input.rolloutId, filter, { limit: BATCH, ...(after ? { after } : {}) })
    if (page.rows.length === 0) break
    const existing = await db
      .selectFrom('reauth_links')
      .selectAll()
      .where('rollout_id', '=', input.rolloutId)
      .where(
        'user_id',
        'in',
        page.rows.map((m) => m.userId),
      )
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('id', 'asc')
      .execute()
    const byUser = new Map(existing.map((row) => [row.user_id, row]))
    const rows = page.rows.map((m) => ({ ...m, link: byUser.get(m.userId) ?? null }))
    totals.matched += rows.length
    totals.withoutLink += rows.filter((r) => r.link === null).length
    await onBatch(rows)
    if (!page.nextCursor) break
    after = page.nextCursor
  }
  return totals
}

function linkCsvLine(context: LinkContext, row: MaybeLinkedRow): string {
  return csvLine([
    row.userId,
    row.cartaUserId,
    row.email,
    // Imported without scopes: lacking every required scope, but not known to miss them.
    row.reason === 'scopes_unknown' ? 'unknown' : row.missing.join(' '),
    row.link ? linkUrl(context, row.link) : '',
    row.link ? new Date(row.link.expires_at).toISOString() : '',
  ])
}

/**
 * Writes the links CSV batch by batch. The header goes out with the first rows, so a failure
 * before them leaves nothing written; `end` writes it alone when no row matched.
 */
function linkCsvWriter(context: LinkContext, write: (chunk: string) => Promise<void>) {
  let pending = csvLine(CSV_HEADER)
  return {
    batch: async (rows: MaybeLinkedRow[]) => {
      let chunk = pending
      pending = ''
      for (const row of rows) chunk += linkCsvLine(context, row)
      await write(chunk)
    },
    end: async () => {
      if (pending) await write(pending)
    },
  }
}

/**
 * The read-only CSV export: one row per user matching the filter with the outstanding link, or
 * empty link columns where none is outstanding (issuing is exportLinksCsv, a POST). Writes nothing.
 */
export async function readLinksCsv(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; filter: LackingFilter },
  write: (chunk: string) => Promise<void>,
): Promise<{ matched: number; withoutLink: number }> {
  const csv = linkCsvWriter(context, write)
  const result = await readLinksForFilter(db, context, input, csv.batch)
  await csv.end()
  return result
}

/**
 * The CSV export: header, then one row per user matching the filter, each with a working link
 * (issued for rows lacking one). `write` applies back-pressure. Audited once (`links.exported`).
 */
export async function exportLinksCsv(
  db: Kysely<Database>,
  context: LinkContext,
  input: { rolloutId: number; filter: LackingFilter; issuedBy: string },
  write: (chunk: string) => Promise<void>,
): Promise<BulkResult> {
  const csv = linkCsvWriter(context, write)
  const result = await ensureLinksForFilter(db, context, input, csv.batch)
  await csv.end()
  await recordAudit(db, context.clock.now(), {
    type: 'links.exported',
    actor: input.issuedBy,
    rolloutId: input.rolloutId,
    details: { ...result, filter: input.filter },
  })
  return result
}
