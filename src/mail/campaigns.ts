// Email campaigns of a rollout (src/README.md, "Email"): who is selected (the ticked users, the
// lacking list's current filter, or everyone lacking), the preview counts, the expansion into
// outbox rows in short chunks under a lease (the operator's action returns at once), reminders to
// people still lacking, pause and resume.
import { randomBytes } from 'node:crypto'
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import { recordAudit } from '../audit/events.js'
import type { Config } from '../config.js'
import type { Database } from '../db/schema.js'
import { DomainError } from '../errors.js'
import { type LackingFilter, listLacking } from '../rollouts/lacking.js'
import { DAY_MS } from '../time.js'
import type { CampaignSelection } from './tables.js'

export interface Selection {
  kind: CampaignSelection
  filter: LackingFilter
  userIds: number[]
}

export interface SelectionCounts {
  /** People the selection names. */
  selected: number
  willSend: number
  noEmail: number
  optedOut: number
  covered: number
  /** Already emailed (or queued) the first step of this rollout. */
  already: number
}

export const MAX_TICKED = 1000
const CHUNK = 1000

export function linkDedupeKey(rolloutId: number, userId: number, step: number): string {
  return `link:${rolloutId}:${userId}:${step}`
}

type Verdict = 'send' | 'no_email' | 'opted_out' | 'covered' | 'already'

/** Why each of these people would or would not be emailed the first step (two queries per call). */
async function verdicts(
  db: Kysely<Database>,
  rolloutId: number,
  userIds: number[],
): Promise<Map<number, { verdict: Verdict; email: string | null }>> {
  const out = new Map<number, { verdict: Verdict; email: string | null }>()
  if (userIds.length === 0) return out
  const rows = await db
    .selectFrom('end_users as u')
    .leftJoin('rollout_members as m', (j) => j.onRef('m.user_id', '=', 'u.id').on('m.rollout_id', '=', rolloutId))
    .leftJoin('mail_opt_outs as o', 'o.user_id', 'u.id')
    .select(['u.id', 'u.email', 'm.needs_action', 'o.user_id as opted'])
    .where('u.id', 'in', userIds)
    .execute()
  // The first step's rows on their own, by (rollout_id, user_id): joined above, PostgreSQL without
  // fresh statistics on a growing outbox matched every row of the rollout against each person.
  // A skipped one (covered or no address then) does not count.
  const emailed = new Set(
    (
      await db
        .selectFrom('mail_outbox')
        .select('user_id')
        .where('rollout_id', '=', rolloutId)
        .where('user_id', 'in', userIds)
        .where('step', '=', 0)
        .where('kind', '=', 'link')
        .where('status', '!=', 'skipped')
        .execute()
    ).map((r) => r.user_id),
  )
  for (const r of rows) {
    const verdict: Verdict =
      r.needs_action !== 1
        ? 'covered'
        : !r.email
          ? 'no_email'
          : r.opted !== null
            ? 'opted_out'
            : emailed.has(r.id)
              ? 'already'
              : 'send'
    out.set(r.id, { verdict, email: r.email })
  }
  return out
}

function tally(counts: SelectionCounts, list: Iterable<{ verdict: Verdict }>): void {
  for (const { verdict } of list) {
    counts.selected++
    if (verdict === 'send') counts.willSend++
    else if (verdict === 'no_email') counts.noEmail++
    else if (verdict === 'opted_out') counts.optedOut++
    else if (verdict === 'covered') counts.covered++
    else counts.already++
  }
}

/** Pages of selected user ids: the ticked ones, or the lacking list's walk (keyset, by user id). */
async function* selectionPages(
  db: Kysely<Database>,
  rolloutId: number,
  selection: Selection,
  after?: string,
): AsyncGenerator<{ ids: number[]; next: string | null }> {
  if (selection.kind === 'users') {
    yield { ids: [...new Set(selection.userIds)], next: null }
    return
  }
  const filter: LackingFilter = selection.kind === 'everyone' ? { sort: 'user' } : { ...selection.filter, sort: 'user' }
  let cursor = after
  for (;;) {
    const page = await listLacking(db, rolloutId, filter, { limit: CHUNK, ...(cursor ? { after: cursor } : {}) })
    yield { ids: page.rows.map((r) => r.userId), next: page.nextCursor }
    if (!page.nextCursor) return
    cursor = page.nextCursor
  }
}

async function activeRollout(db: Kysely<Database>, rolloutId: number) {
  const rollout = await db
    .selectFrom('rollouts')
    .select(['id', 'name', 'status', 'required_scopes'])
    .where('id', '=', rolloutId)
    .executeTakeFirst()
  if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
  if (rollout.status !== 'active')
    throw new DomainError('rollout.archived', `Rollout "${rollout.name}" is archived; it sends no email.`, {
      rolloutId,
    })
  return rollout
}

function checkSelection(selection: Selection): void {
  if (selection.kind === 'users' && selection.userIds.length === 0)
    throw new DomainError('mail.bad_selection', 'Tick at least one person in the list first.', { reason: 'none' })
  if (selection.userIds.length > MAX_TICKED)
    throw new DomainError('mail.bad_selection', `Tick at most ${MAX_TICKED} people, or email the whole filter.`, {
      reason: 'too_many',
    })
}

/** The preview: how many would be emailed and why the others would not, plus one of those emailed. */
export async function previewSelection(
  db: Kysely<Database>,
  rolloutId: number,
  selection: Selection,
): Promise<{ counts: SelectionCounts; sampleUserId: number | null }> {
  await activeRollout(db, rolloutId)
  checkSelection(selection)
  if (selection.kind === 'everyone') return previewEveryone(db, rolloutId)
  const counts: SelectionCounts = { selected: 0, willSend: 0, noEmail: 0, optedOut: 0, covered: 0, already: 0 }
  let sampleUserId: number | null = null
  for await (const page of selectionPages(db, rolloutId, selection)) {
    const v = await verdicts(db, rolloutId, page.ids)
    tally(counts, v.values())
    sampleUserId ??= [...v].find(([, x]) => x.verdict === 'send')?.[0] ?? null
  }
  return { counts, sampleUserId }
}

/**
 * Everyone lacking, counted in one set-based query instead of walking the list in pages: the same
 * verdicts (no address, then opted out, then already emailed, else send) over the rollout's
 * members needing action (index rollout_members_list), about a second at 700,000 people.
 */
async function previewEveryone(
  db: Kysely<Database>,
  rolloutId: number,
): Promise<{ counts: SelectionCounts; sampleUserId: number | null }> {
  const base = db
    .selectFrom('rollout_members as m')
    .innerJoin('end_users as u', 'u.id', 'm.user_id')
    .where('m.rollout_id', '=', rolloutId)
    .where('m.needs_action', '=', 1)
  const optedOut = (eb: ExpressionBuilder<Database & { m: Database['rollout_members'] }, 'm'>) =>
    eb.exists(eb.selectFrom('mail_opt_outs as o').select('o.user_id').whereRef('o.user_id', '=', 'm.user_id'))
  const emailed = (eb: ExpressionBuilder<Database & { m: Database['rollout_members'] }, 'm'>) =>
    eb.exists(
      eb
        .selectFrom('mail_outbox as ob')
        .select('ob.id')
        .where('ob.rollout_id', '=', rolloutId)
        .whereRef('ob.user_id', '=', 'm.user_id')
        .where('ob.step', '=', 0)
        .where('ob.kind', '=', 'link')
        .where('ob.status', '!=', 'skipped'),
    )
  const noEmail = (eb: ExpressionBuilder<Database & { u: Database['end_users'] }, 'u'>) =>
    eb.or([eb('u.email', 'is', null), eb('u.email', '=', '')])
  const row = await base
    .select((eb) => [
      eb.fn.countAll().as('selected'),
      eb.fn.sum(eb.case().when(noEmail(eb)).then(1).else(0).end()).as('no_email'),
      eb.fn.sum(eb.case().when(noEmail(eb)).then(0).when(optedOut(eb)).then(1).else(0).end()).as('opted_out'),
      eb.fn
        .sum(eb.case().when(noEmail(eb)).then(0).when(optedOut(eb)).then(0).when(emailed(eb)).then(1).else(0).end())
        .as('already'),
    ])
    .executeTakeFirstOrThrow()
  const selected = Number(row.selected)
  const counts: SelectionCounts = {
    selected,
    willSend: 0,
    noEmail: Number(row.no_email ?? 0),
    optedOut: Number(row.opted_out ?? 0),
    covered: 0,
    already: Number(row.already ?? 0),
  }
  counts.willSend = selected - counts.noEmail - counts.optedOut - counts.already
  const sample =
    counts.willSend > 0
      ? await base
          .select('m.user_id')
          .where((eb) => eb.not(noEmail(eb)))
          .where((eb) => eb.not(optedOut(eb)))
          .where((eb) => eb.not(emailed(eb)))
          .orderBy('m.user_id')
          .limit(1)
          .executeTakeFirst()
      : undefined
  return { counts, sampleUserId: sample?.user_id ?? null }
}

/** Creates a campaign; its rows are queued in the background by the mail job (expandCampaigns). */
export async function createCampaign(
  db: Kysely<Database>,
  config: Config,
  input: { rolloutId: number; selection: Selection; reminderDays: number[]; createdBy: string },
  now: number,
): Promise<number> {
  if (config.mail.transport.kind === 'off')
    throw new DomainError('mail.not_configured', 'Email is off: SMTP_URL is not set.', {})
  await activeRollout(db, input.rolloutId)
  checkSelection(input.selection)
  return db.transaction().execute(async (trx) => {
    const { id } = await trx
      .insertInto('mail_campaigns')
      .values({
        rollout_id: input.rolloutId,
        selection: input.selection.kind,
        filter: JSON.stringify(input.selection.kind === 'filter' ? input.selection.filter : {}),
        user_ids: input.selection.kind === 'users' ? JSON.stringify([...new Set(input.selection.userIds)]) : null,
        reminder_days: input.reminderDays.join(' '),
        expand_cursor: null,
        expand_lock_owner: null,
        expand_lock_until: null,
        created_by: input.createdBy,
        created_at: now,
        paused_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'mail.campaign_created',
      actor: input.createdBy,
      rolloutId: input.rolloutId,
      details: {
        campaignId: Number(id),
        selection: input.selection.kind,
        ...(input.selection.kind === 'filter' ? { filter: input.selection.filter } : {}),
        ...(input.selection.kind === 'users' ? { users: input.selection.userIds.length } : {}),
        reminderDays: input.reminderDays,
      },
    })
    return Number(id)
  })
}

const EXPAND_LEASE_MS = 2 * 60_000

/**
 * Queues the rows of campaigns still expanding: one chunk (1,000 people) per transaction, each
 * under the campaign's lease so two instances never expand the same chunk; the counters move
 * with the rows. Returns the rows queued.
 */
export async function expandCampaigns(
  db: Kysely<Database>,
  now: () => number,
  options: { budgetMs?: number } = {},
): Promise<number> {
  const owner = `${process.pid}-${randomBytes(4).toString('hex')}`
  const started = Date.now()
  let queued = 0
  const campaigns = await db
    .selectFrom('mail_campaigns')
    .selectAll()
    .where('expand_status', '=', 'expanding')
    .where('status', '=', 'active')
    .orderBy('id')
    .execute()
  for (const campaign of campaigns) {
    const lease = await db
      .updateTable('mail_campaigns')
      .set({ expand_lock_owner: owner, expand_lock_until: now() + EXPAND_LEASE_MS })
      .where('id', '=', campaign.id)
      .where('expand_status', '=', 'expanding')
      .where((eb) => eb.or([eb('expand_lock_until', 'is', null), eb('expand_lock_until', '<', now())]))
      .executeTakeFirst()
    if (Number(lease.numUpdatedRows) !== 1) continue
    const selection: Selection = {
      kind: campaign.selection,
      filter: { sort: 'user', ...(JSON.parse(campaign.filter) as Partial<LackingFilter>) },
      userIds: campaign.user_ids ? (JSON.parse(campaign.user_ids) as number[]) : [],
    }
    let finished = false
    try {
      for await (const page of selectionPages(
        db,
        campaign.rollout_id,
        selection,
        campaign.expand_cursor ?? undefined,
      )) {
        queued += await queueChunk(db, campaign.id, campaign.rollout_id, owner, page, now())
        if (!page.next) {
          finished = true
          break
        }
        if (Date.now() - started > (options.budgetMs ?? 20_000)) break
      }
    } catch (err) {
      // A filter that no longer applies (an app or scope removed): nothing more to queue.
      if (!(err instanceof DomainError)) throw err
      finished = true
    }
    await db
      .updateTable('mail_campaigns')
      .set({
        expand_lock_owner: null,
        expand_lock_until: null,
        ...(finished ? { expand_status: 'done' as const } : {}),
      })
      .where('id', '=', campaign.id)
      .where('expand_lock_owner', '=', owner)
      .execute()
    if (!finished) break
  }
  return queued
}

async function queueChunk(
  db: Kysely<Database>,
  campaignId: number,
  rolloutId: number,
  owner: string,
  page: { ids: number[]; next: string | null },
  now: number,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    // Still ours? A lease that ran out may have passed to another instance.
    const held = await trx
      .updateTable('mail_campaigns')
      .set({ expand_lock_until: now + EXPAND_LEASE_MS })
      .where('id', '=', campaignId)
      .where('expand_lock_owner', '=', owner)
      .executeTakeFirst()
    if (Number(held.numUpdatedRows) !== 1) throw new Error('campaign lease lost')
    const v = await verdicts(trx, rolloutId, page.ids)
    const counts: SelectionCounts = { selected: 0, willSend: 0, noEmail: 0, optedOut: 0, covered: 0, already: 0 }
    tally(counts, v.values())
    const rows = [...v]
      .filter(([, x]) => x.verdict === 'send')
      .map(([userId, x]) => ({
        kind: 'link' as const,
        dedupe_key: linkDedupeKey(rolloutId, userId, 0),
        campaign_id: campaignId,
        rollout_id: rolloutId,
        user_id: userId,
        step: 0,
        to_address: x.email ?? '',
        payload: null,
        reason: null,
        next_attempt_at: now,
        lock_owner: null,
        lock_until: null,
        link_id: null,
        message_id: null,
        created_at: now,
        sent_at: null,
        updated_at: now,
      }))
    let inserted = 0
    for (let i = 0; i < rows.length; i += 200) {
      const part = rows.slice(i, i + 200)
      // A skipped first step (covered or no address back then) may be queued again now.
      await trx
        .deleteFrom('mail_outbox')
        .where(
          'dedupe_key',
          'in',
          part.map((r) => r.dedupe_key),
        )
        .where('status', '=', 'skipped')
        .execute()
      const done = await trx
        .insertInto('mail_outbox')
        .values(part)
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .returning('id')
        .execute()
      inserted += done.length
    }
    await trx
      .updateTable('mail_campaigns')
      .set((eb) => ({
        queued: eb('queued', '+', inserted),
        skipped_no_email: eb('skipped_no_email', '+', counts.noEmail),
        skipped_opted_out: eb('skipped_opted_out', '+', counts.optedOut),
        skipped_covered: eb('skipped_covered', '+', counts.covered),
        skipped_already: eb('skipped_already', '+', counts.already + (rows.length - inserted)),
        expand_cursor: page.next,
      }))
      .where('id', '=', campaignId)
      .execute()
    return inserted
  })
}

/**
 * Queues due reminders: for each active campaign, step k goes `days[k-1]` days after the first
 * email was sent, only to people still lacking, not opted out, with an address; each step once
 * per person (the dedupe key). One set-based INSERT … SELECT per step.
 */
export async function queueReminders(db: Kysely<Database>, now: number): Promise<number> {
  const campaigns = await db
    .selectFrom('mail_campaigns')
    .select(['id', 'rollout_id', 'reminder_days'])
    .where('status', '=', 'active')
    .where('reminder_days', '!=', '')
    .where('rollout_id', 'in', (eb) => eb.selectFrom('rollouts').select('id').where('status', '=', 'active'))
    .execute()
  let queued = 0
  for (const campaign of campaigns) {
    const days = campaign.reminder_days.split(' ').map(Number)
    for (const [index, day] of days.entries()) {
      const step = index + 1
      const result = await db
        .insertInto('mail_outbox')
        .columns([
          'kind',
          'dedupe_key',
          'campaign_id',
          'rollout_id',
          'user_id',
          'step',
          'to_address',
          'next_attempt_at',
          'created_at',
          'updated_at',
        ])
        .expression((eb) =>
          eb
            .selectFrom('mail_outbox as s0')
            .innerJoin('rollout_members as m', (j) =>
              j.onRef('m.rollout_id', '=', 's0.rollout_id').onRef('m.user_id', '=', 's0.user_id'),
            )
            .innerJoin('end_users as u', 'u.id', 's0.user_id')
            .leftJoin('mail_opt_outs as o', 'o.user_id', 's0.user_id')
            .select([
              sql.lit('link').as('kind'),
              sql<string>`'link:' || s0.rollout_id || ':' || s0.user_id || ':' || ${sql.lit(step)}`.as('dedupe_key'),
              's0.campaign_id',
              's0.rollout_id',
              's0.user_id',
              sql.lit(step).as('step'),
              'u.email',
              sql.lit(now).as('next_attempt_at'),
              sql.lit(now).as('created_at'),
              sql.lit(now).as('updated_at'),
            ])
            .where('s0.campaign_id', '=', campaign.id)
            .where('s0.step', '=', 0)
            .where('s0.status', '=', 'sent')
            .where('s0.sent_at', '<=', now - day * DAY_MS)
            .where('m.needs_action', '=', 1)
            .where('u.email', 'is not', null)
            .where('o.user_id', 'is', null),
        )
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .executeTakeFirst()
      queued += Number(result.numInsertedOrUpdatedRows ?? 0)
    }
  }
  return queued
}

export async function setCampaignPaused(
  db: Kysely<Database>,
  input: { rolloutId: number; campaignId: number; paused: boolean; actor: string },
  now: number,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const campaign = await trx
      .selectFrom('mail_campaigns')
      .select(['id', 'status'])
      .where('id', '=', input.campaignId)
      .where('rollout_id', '=', input.rolloutId)
      .executeTakeFirst()
    if (!campaign)
      throw new DomainError('mail.campaign_not_found', `There is no campaign ${input.campaignId}.`, {
        campaignId: input.campaignId,
      })
    const target = input.paused ? 'paused' : 'active'
    if (campaign.status === target) return false
    await trx
      .updateTable('mail_campaigns')
      .set({ status: target, paused_at: input.paused ? now : null })
      .where('id', '=', input.campaignId)
      .execute()
    await recordAudit(trx, now, {
      type: input.paused ? 'mail.campaign_paused' : 'mail.campaign_resumed',
      actor: input.actor,
      rolloutId: input.rolloutId,
      details: { campaignId: input.campaignId },
    })
    return true
  })
}

export interface CampaignView {
  id: number
  selection: CampaignSelection
  status: 'active' | 'paused'
  expanding: boolean
  reminderDays: number[]
  createdBy: string
  createdAt: number
  skipped: { noEmail: number; optedOut: number; covered: number; already: number }
  /** Outbox rows by status (all steps). */
  outbox: { queued: number; sending: number; sent: number; failed: number; skipped: number }
  reminders: number
}

/** The campaigns of a rollout with their counts, newest first. */
export async function rolloutCampaigns(db: Kysely<Database>, rolloutId: number): Promise<CampaignView[]> {
  const campaigns = await db
    .selectFrom('mail_campaigns')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .orderBy('id', 'desc')
    .limit(20)
    .execute()
  if (campaigns.length === 0) return []
  const counts = await db
    .selectFrom('mail_outbox')
    .select((eb) => ['campaign_id', 'status', eb.fn.countAll().as('n'), eb.fn.max('step').as('max_step')])
    .where(
      'campaign_id',
      'in',
      campaigns.map((c) => c.id),
    )
    .groupBy(['campaign_id', 'status'])
    .execute()
  return campaigns.map((c) => {
    const outbox = { queued: 0, sending: 0, sent: 0, failed: 0, skipped: 0 }
    let reminders = 0
    for (const row of counts)
      if (row.campaign_id === c.id) {
        outbox[row.status as keyof typeof outbox] += Number(row.n)
        reminders = Math.max(reminders, Number(row.max_step ?? 0))
      }
    return {
      id: c.id,
      selection: c.selection,
      status: c.status,
      expanding: c.expand_status === 'expanding',
      reminderDays: c.reminder_days ? c.reminder_days.split(' ').map(Number) : [],
      createdBy: c.created_by,
      createdAt: c.created_at,
      skipped: {
        noEmail: c.skipped_no_email,
        optedOut: c.skipped_opted_out,
        covered: c.skipped_covered,
        already: c.skipped_already,
      },
      outbox,
      reminders,
    }
  })
}
