// The durable outbox (src/README.md, "Email"): every message is a row before it is sent; the
// worker leases due rows, renders and sends them at the configured rate, retries transient SMTP
// failures (4xx replies, connection errors) with backoff, and marks permanent ones (5xx at RCPT
// or DATA) failed with the server's reply.
//
// Never twice: a row is leased (lock_owner/lock_until, one conditional UPDATE: exactly one
// instance wins it on either engine), then flipped to 'sending' just before the SMTP call, and its
// message_id is written just before the end of the message data (the final ".", RFC 5321
// §4.1.1.4). A process killed mid-send leaves a 'sending' row: without message_id the server never
// received the end of the data, so it never took the message (RFC 5321 §6.1: responsibility passes
// with the reply to the end of data) and the row is sent again — exactly once; with message_id the
// outcome is unknown and the row is failed ("interrupted"), never sent again, so nobody receives a
// step twice. Rows only leased return to the queue when their lease runs out, at once when the
// lease holder was a process of this host that is gone (a restart after kill -9).
import { randomInt } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/schema.js'
import { recordAudit } from '../audit/events.js'
import { isDomainError } from '../errors.js'
import { issueLink, linkContextFrom } from '../links/links.js'
import type { Logger } from '../log.js'
import { isDeadLocalOwner, newBuildOwner } from '../rollouts/build.js'
import { parseScopes } from '../scopes.js'
import { linkMessage } from './message.js'
import { unsubscribeUrl } from './opt-out.js'
import type { Mailer, OutgoingMessage } from './transport.js'

export interface OutboxDeps {
  config: Config
  db: Kysely<Database>
  clock: Clock
}

const LEASE_MS = 5 * 60_000
export const MAX_ATTEMPTS = 8
const BASE_DELAY_MS = 30_000
const MAX_DELAY_MS = 60 * 60_000
const BATCH = 100

/** 30 s × 2^(attempts−1), capped at 1 h, ±20 % jitter. */
export function mailBackoffMs(attempts: number): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1))
  const spread = Math.floor(base * 0.2)
  return base - spread + randomInt(2 * spread + 1)
}

/** A reply is stored as one line of text (PostgreSQL refuses NUL): control characters become spaces. */
function withoutControls(s: string): string {
  return [...s].map((c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? ' ' : c)).join('')
}

export interface SmtpFailure {
  permanent: boolean
  /** The server's reply or the error, one line, for the row and the dashboard. */
  reason: string
}

/**
 * RFC 5321 §4.2.1: 5yz is a permanent negative completion, 4yz transient. A 5xx at RCPT or DATA
 * is about this message or recipient: failed for good. A 5xx elsewhere (MAIL FROM, AUTH) and every
 * connection error concern the server or our settings: the message waits and retries.
 */
export function classifySmtpError(err: unknown): SmtpFailure {
  const e = err as { responseCode?: number; command?: string; response?: string; code?: string; message?: string }
  const oneLine = (s: string) => withoutControls(s).replace(/ {2,}/g, ' ').trim().slice(0, 300)
  const reply = e.response ? oneLine(e.response) : null
  const command = (e.command ?? '').toUpperCase()
  const permanent =
    typeof e.responseCode === 'number' &&
    e.responseCode >= 500 &&
    e.responseCode < 600 &&
    (command.startsWith('RCPT') || command.startsWith('DATA'))
  const reason = reply
    ? `${command ? `${command}: ` : ''}${reply}`
    : oneLine(`${e.code ? `${e.code}: ` : ''}${e.message ?? 'could not send'}`)
  return { permanent, reason }
}

export interface OutboxRun {
  sent: number
  failed: number
  retry: number
  skipped: number
  interrupted: number
}

/**
 * Rows left 'sending' by a process that died mid-send (their lease ran out). Without message_id the
 * end of the data was never sent: the server did not take the message, so it goes back to the
 * queue. With it the outcome is unknown: failed, never sent again, so nobody receives it twice.
 */
export async function failInterrupted(db: Kysely<Database>, now: number): Promise<number> {
  const requeued = await db
    .updateTable('mail_outbox')
    .set({
      status: 'queued',
      reason: 'interrupted before the end of the message (the process stopped); sent again',
      lock_owner: null,
      lock_until: null,
      next_attempt_at: now,
      updated_at: now,
    })
    .where('status', '=', 'sending')
    .where('lock_until', '<', now)
    .where('message_id', 'is', null)
    .executeTakeFirst()
  const result = await db
    .updateTable('mail_outbox')
    .set({
      status: 'failed',
      reason:
        'interrupted after the message was handed to the server, before its reply (the process stopped); outcome unknown, not sent again so nobody receives it twice',
      lock_owner: null,
      lock_until: null,
      updated_at: now,
    })
    .where('status', '=', 'sending')
    .where('lock_until', '<', now)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) + Number(requeued.numUpdatedRows)
}

/**
 * On each pass: the leases still held by this host's dead previous run (kill -9, a crash) end now
 * instead of after LEASE_MS, so a restarted process resumes at once (rollouts/build.ts
 * isDeadLocalOwner: same host name, no such pid). Its 'sending' rows then go to failInterrupted.
 */
async function releaseDeadLocalLeases(db: Kysely<Database>, owner: string, now: number): Promise<void> {
  const holders = await db
    .selectFrom('mail_outbox')
    .select('lock_owner')
    .distinct()
    .where('status', 'in', ['queued', 'sending'])
    .where('lock_owner', 'is not', null)
    .where('lock_until', '>=', now)
    .execute()
  for (const { lock_owner } of holders) {
    if (!lock_owner || !isDeadLocalOwner(lock_owner, owner)) continue
    await db
      .updateTable('mail_outbox')
      .set({ lock_until: now - 1 })
      .where('lock_owner', '=', lock_owner)
      .where('status', 'in', ['queued', 'sending'])
      .execute()
  }
}

/** Leases up to `limit` due rows for `owner`, skipping rows of paused campaigns. */
async function leaseDue(db: Kysely<Database>, owner: string, limit: number, now: number, only?: OutboxScope) {
  let candidates = db
    .selectFrom('mail_outbox')
    .select('id')
    .where('status', '=', 'queued')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', now)]))
    .where((eb) =>
      eb.or([
        eb('campaign_id', 'is', null),
        eb('campaign_id', 'not in', eb.selectFrom('mail_campaigns').select('id').where('status', '=', 'paused')),
      ]),
    )
  if (only?.rolloutId !== undefined) candidates = candidates.where('rollout_id', '=', only.rolloutId)
  if (only?.campaignIds) candidates = candidates.where('campaign_id', 'in', only.campaignIds)
  const ids = (await candidates.orderBy('next_attempt_at').orderBy('id').limit(limit).execute()).map((r) => r.id)
  if (ids.length === 0) return []
  await db
    .updateTable('mail_outbox')
    .set({ lock_owner: owner, lock_until: now + LEASE_MS })
    .where('id', 'in', ids)
    .where('status', '=', 'queued')
    .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', now)]))
    .execute()
  return db
    .selectFrom('mail_outbox')
    .selectAll()
    .where('id', 'in', ids)
    .where('lock_owner', '=', owner)
    .where('status', '=', 'queued')
    .orderBy('id')
    .execute()
}

type OutboxRow = Awaited<ReturnType<typeof leaseDue>>[number]

/** Which rows a run may take: all, one rollout's, or some campaigns' (the CLI's --wait). */
export interface OutboxScope {
  rolloutId?: number
  campaignIds?: number[]
}

/**
 * Sends due rows until none is left or `budgetMs` has passed, at most `config.mail.ratePerSecond`
 * messages per second (0: unlimited), `concurrency` at a time.
 */
export async function processOutbox(
  deps: OutboxDeps & { mailer: Mailer; log?: Logger },
  options: { budgetMs?: number; concurrency?: number; only?: OutboxScope } = {},
): Promise<OutboxRun> {
  const { db, clock } = deps
  const owner = newBuildOwner()
  const run: OutboxRun = { sent: 0, failed: 0, retry: 0, skipped: 0, interrupted: 0 }
  await releaseDeadLocalLeases(db, owner, clock.now())
  run.interrupted = await failInterrupted(db, clock.now())
  const started = Date.now()
  const budget = options.budgetMs ?? 30_000
  const rate = deps.config.mail.ratePerSecond
  const concurrency = Math.max(1, options.concurrency ?? 5)
  let sentInWindow = 0
  let windowStart = Date.now()
  for (;;) {
    if (Date.now() - started > budget) break
    const rows = await leaseDue(db, owner, BATCH, clock.now(), options.only)
    if (rows.length === 0) break
    let next = 0
    const worker = async () => {
      while (next < rows.length) {
        const row = rows[next++]!
        if (rate > 0) {
          // A fixed one-second window: at most `rate` sends start within it.
          const elapsed = Date.now() - windowStart
          if (elapsed >= 1000) {
            windowStart = Date.now()
            sentInWindow = 0
          } else if (sentInWindow >= rate) {
            await new Promise((r) => setTimeout(r, 1000 - elapsed))
            windowStart = Date.now()
            sentInWindow = 0
          }
          sentInWindow++
        }
        const outcome = await sendRow(deps, owner, row)
        run[outcome]++
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker))
    // Rows this pass leased but did not reach (budget spent) are released for the next pass.
    await db
      .updateTable('mail_outbox')
      .set({ lock_owner: null, lock_until: null })
      .where('lock_owner', '=', owner)
      .where('status', '=', 'queued')
      .execute()
  }
  return run
}

type Outcome = 'sent' | 'failed' | 'retry' | 'skipped'

async function sendRow(deps: OutboxDeps & { mailer: Mailer; log?: Logger }, owner: string, row: OutboxRow) {
  const { db, clock } = deps
  let prepared: { message: OutgoingMessage; linkId: number | null } | { skip: string }
  try {
    prepared = row.kind === 'link' ? await prepareLinkMessage(deps, row) : prepareReportMessage(row)
  } catch (err) {
    deps.log?.error({ err, outboxId: row.id }, 'could not prepare a message')
    prepared = { skip: 'could not be prepared' }
  }
  const now = clock.now()
  if ('skip' in prepared) {
    await db
      .updateTable('mail_outbox')
      .set({ status: 'skipped', reason: prepared.skip, lock_owner: null, lock_until: null, updated_at: now })
      .where('id', '=', row.id)
      .where('lock_owner', '=', owner)
      .execute()
    return 'skipped' satisfies Outcome
  }
  // From here a crash leaves 'sending': sent again only if its end of data never went out (failInterrupted).
  const claimed = await db
    .updateTable('mail_outbox')
    .set({ status: 'sending', attempts: row.attempts + 1, link_id: prepared.linkId, message_id: null, updated_at: now })
    .where('id', '=', row.id)
    .where('lock_owner', '=', owner)
    .where('status', '=', 'queued')
    .executeTakeFirst()
  if (Number(claimed.numUpdatedRows) !== 1) return 'skipped' satisfies Outcome
  try {
    const delivered = await deps.mailer.send(prepared.message, {
      // From here the server may take the message: a crash leaves the outcome unknown (above).
      beforeEndOfData: async (messageId) => {
        await db
          .updateTable('mail_outbox')
          .set({ message_id: messageId.slice(0, 300) })
          .where('id', '=', row.id)
          .where('status', '=', 'sending')
          .execute()
      },
    })
    const done = clock.now()
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('mail_outbox')
        .set({
          status: 'sent',
          sent_at: done,
          message_id: delivered.messageId.slice(0, 300),
          reason: null,
          lock_owner: null,
          lock_until: null,
          updated_at: done,
        })
        .where('id', '=', row.id)
        .execute()
      if (prepared.linkId !== null)
        await trx
          .updateTable('reauth_links')
          .set({ emailed_at: done })
          .where('id', '=', prepared.linkId)
          .where('emailed_at', 'is', null)
          .execute()
    })
    deps.log?.info({ outboxId: row.id, userId: row.user_id, step: row.step, kind: row.kind }, 'email sent')
    return 'sent' satisfies Outcome
  } catch (err) {
    const failure = classifySmtpError(err)
    const attempts = row.attempts + 1
    const giveUp = failure.permanent || attempts >= MAX_ATTEMPTS
    const done = clock.now()
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('mail_outbox')
        .set({
          status: giveUp ? 'failed' : 'queued',
          reason: failure.reason,
          lock_owner: null,
          lock_until: null,
          next_attempt_at: giveUp ? row.next_attempt_at : done + mailBackoffMs(attempts),
          updated_at: done,
        })
        .where('id', '=', row.id)
        .execute()
      if (giveUp)
        await recordAudit(trx, done, {
          type: 'mail.failed',
          actor: 'system',
          userId: row.user_id,
          rolloutId: row.rollout_id,
          details: { outboxId: row.id, step: row.step, attempts, permanent: failure.permanent, reason: failure.reason },
        })
    })
    deps.log?.warn(
      { outboxId: row.id, userId: row.user_id, attempts, permanent: failure.permanent, reason: failure.reason },
      giveUp ? 'email failed' : 'email will be retried',
    )
    return (giveUp ? 'failed' : 'retry') satisfies Outcome
  }
}

/**
 * A link message is rendered when it is sent, from what is true then: a person now covered, opted
 * out, without an address, or in an archived rollout is skipped; the link is the open one (or a
 * new one), so the outbox never stores a URL.
 */
async function prepareLinkMessage(
  deps: OutboxDeps,
  row: OutboxRow,
): Promise<{ message: OutgoingMessage; linkId: number } | { skip: string }> {
  const { db, config, clock } = deps
  if (row.rollout_id === null || row.user_id === null) return { skip: 'no rollout or person' }
  const [member, user, optedOut, rollout] = await Promise.all([
    db
      .selectFrom('rollout_members')
      .select(['needs_action', 'missing_scopes'])
      .where('rollout_id', '=', row.rollout_id)
      .where('user_id', '=', row.user_id)
      .executeTakeFirst(),
    db.selectFrom('end_users').select(['email', 'name']).where('id', '=', row.user_id).executeTakeFirst(),
    db.selectFrom('mail_opt_outs').select('user_id').where('user_id', '=', row.user_id).executeTakeFirst(),
    db
      .selectFrom('rollouts')
      .select(['name', 'status', 'required_scopes'])
      .where('id', '=', row.rollout_id)
      .executeTakeFirst(),
  ])
  if (rollout?.status !== 'active') return { skip: 'rollout_archived' }
  if (optedOut) return { skip: 'opted_out' }
  if (member?.needs_action !== 1) return { skip: 'covered' }
  if (!user?.email) return { skip: 'no_email' }
  let issued: Awaited<ReturnType<typeof issueLink>>
  try {
    issued = await issueLink(db, linkContextFrom(config, clock), {
      rolloutId: row.rollout_id,
      userId: row.user_id,
      issuedBy: 'system:email',
    })
  } catch (err) {
    if (isDomainError(err, 'rollout.archived') || isDomainError(err, 'rollout.not_found'))
      return { skip: 'rollout_archived' }
    throw err
  }
  const missing = parseScopes(member.missing_scopes)
  const message = linkMessage({
    to: user.email,
    name: user.name,
    rolloutName: rollout.name,
    added: missing.length > 0 ? missing : parseScopes(rollout.required_scopes),
    url: issued.url,
    expiresAt: issued.link.expires_at,
    unsubscribeUrl: unsubscribeUrl(config.publicUrl, config.linkSigningSecret, row.user_id),
    step: row.step,
  })
  return { message: { ...message, to: user.email }, linkId: issued.link.id }
}

/** A message of another kind carries its subject, parts and attachments in the row (payload, JSON). */
function prepareReportMessage(row: OutboxRow): { message: OutgoingMessage; linkId: null } | { skip: string } {
  if (!row.payload) return { skip: 'no content' }
  const payload = JSON.parse(row.payload) as Omit<OutgoingMessage, 'to'>
  return { message: { ...payload, to: row.to_address }, linkId: null }
}

// --- what the dashboard and the rollout page show ------------------------------------------------

export interface MailHealth {
  transport: 'smtp' | 'mailbox' | 'off'
  queued: number
  failed: number
  /** Queued rows whose last attempt failed transiently: the server is down or refusing. */
  retrying: number
  lastError: string | null
  oldestQueuedAt: number | null
}

export async function mailHealth(db: Kysely<Database>, config: Config): Promise<MailHealth> {
  const rows = await db
    .selectFrom('mail_outbox')
    .select((eb) => [
      'status',
      eb.fn.countAll().as('n'),
      eb.fn.min('created_at').as('oldest'),
      eb.fn.sum(eb.case().when('attempts', '>', 0).then(1).else(0).end()).as('retrying'),
    ])
    .where('status', 'in', ['queued', 'failed'])
    .groupBy('status')
    .execute()
  const health: MailHealth = {
    transport: config.mail.transport.kind,
    queued: 0,
    failed: 0,
    retrying: 0,
    lastError: null,
    oldestQueuedAt: null,
  }
  for (const row of rows) {
    if (row.status === 'queued') {
      health.queued = Number(row.n)
      health.retrying = Number(row.retrying ?? 0)
      health.oldestQueuedAt = row.oldest === null ? null : Number(row.oldest)
    } else health.failed = Number(row.n)
  }
  if (health.retrying > 0) {
    const last = await db
      .selectFrom('mail_outbox')
      .select('reason')
      .where('status', '=', 'queued')
      .where('attempts', '>', 0)
      .orderBy('updated_at', 'desc')
      .limit(1)
      .executeTakeFirst()
    health.lastError = last?.reason ?? null
  }
  return health
}
