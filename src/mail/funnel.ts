// The funnel of a rollout (src/README.md, "Email"): what happened to the people it reached, from
// the link being issued to the grant, counted per person (a person counts once per step however
// many links or messages they had). Driven from the links and outbox rows of the rollout, so the
// cost follows the people reached, not the rollout's size.
import { type Expression, type Kysely, type SelectQueryBuilder, type SqlBool, expressionBuilder } from 'kysely'
import type { Database } from '../db/schema.js'

export const FUNNEL_STEPS = [
  'issued',
  'emailed',
  'failed',
  'opened',
  'continued',
  'completed',
  'completed_lacking',
  'declined',
  'identity_mismatch',
  'expired',
  'opted_out',
] as const
export type FunnelStep = (typeof FUNNEL_STEPS)[number]

export const FUNNEL_LABELS: Record<FunnelStep, string> = {
  issued: 'link issued',
  emailed: 'emailed',
  failed: 'email failed',
  opened: 'opened the link',
  continued: 'continued to Carta',
  completed: 'completed (covered)',
  completed_lacking: 'completed, still lacking',
  declined: 'declined at Carta',
  identity_mismatch: 'another Carta identity',
  expired: 'link expired',
  opted_out: 'opted out of email',
}

type Source = 'links' | 'outbox' | 'opt_outs'

/** Where a step is read from, and the condition on that row (aliases l, ob, m). */
function stepQuery(
  step: FunnelStep,
  now: number,
): { source: Source; where: (rolloutId: number) => Expression<SqlBool> } {
  type Walk = Database & {
    l: Database['reauth_links']
    ob: Database['mail_outbox']
    m: Database['rollout_members']
  }
  const eb = expressionBuilder<Walk, 'l' | 'ob' | 'm'>()
  const link = (cond: (r: number) => Expression<SqlBool>) => ({ source: 'links' as const, where: cond })
  const member = (r: number, needs: 0 | 1) =>
    eb.exists(
      eb
        .selectFrom('rollout_members as mm')
        .select('mm.user_id')
        .where('mm.rollout_id', '=', r)
        .whereRef('mm.user_id', '=', 'l.user_id')
        .where('mm.needs_action', '=', needs),
    )
  switch (step) {
    case 'issued':
      return link(() => eb.lit(true))
    case 'emailed':
      return { source: 'outbox', where: () => eb('ob.status', '=', 'sent') }
    case 'failed':
      return { source: 'outbox', where: () => eb('ob.status', '=', 'failed') }
    case 'opened':
      return link(() => eb('l.opened_at', 'is not', null))
    case 'continued':
      return link(() => eb('l.continued_at', 'is not', null))
    case 'completed':
      return link((r) => eb.and([eb('l.used_at', 'is not', null), member(r, 0)]))
    case 'completed_lacking':
      return link((r) => eb.and([eb('l.used_at', 'is not', null), member(r, 1)]))
    case 'declined':
      return link(() => eb('l.outcome', '=', 'declined'))
    case 'identity_mismatch':
      return link(() => eb('l.outcome', '=', 'identity_mismatch'))
    case 'expired':
      // An expired, unused link, and no link of theirs that still works or was used.
      return link((r) =>
        eb.and([
          eb('l.used_at', 'is', null),
          eb('l.expires_at', '<=', now),
          eb.not(
            eb.exists(
              eb
                .selectFrom('reauth_links as l2')
                .select('l2.id')
                .where('l2.rollout_id', '=', r)
                .whereRef('l2.user_id', '=', 'l.user_id')
                .where((w) =>
                  w.or([
                    w('l2.used_at', 'is not', null),
                    w.and([w('l2.expires_at', '>', now), w('l2.revoked_at', 'is', null)]),
                  ]),
                ),
            ),
          ),
        ]),
      )
    case 'opted_out':
      return { source: 'opt_outs', where: () => eb.lit(true) }
  }
}

/** People of the rollout at `step`: distinct user ids, as one derived table `p`. */
function peopleAt(db: Kysely<Database>, rolloutId: number, step: FunnelStep, now: number) {
  return db.selectFrom(peopleQuery(db, rolloutId, step, now).distinct().as('p')).select('p.user_id')
}

function peopleQuery(
  db: Kysely<Database>,
  rolloutId: number,
  step: FunnelStep,
  now: number,
): SelectQueryBuilder<Database, 'reauth_links', { user_id: number }> {
  const q = stepQuery(step, now)
  if (q.source === 'links')
    return db
      .selectFrom('reauth_links as l')
      .select('l.user_id as user_id')
      .where('l.rollout_id', '=', rolloutId)
      .where(q.where(rolloutId) as Expression<SqlBool>) as unknown as PeopleQuery
  if (q.source === 'outbox')
    return db
      .selectFrom('mail_outbox as ob')
      .select('ob.user_id as user_id')
      .where('ob.rollout_id', '=', rolloutId)
      .where('ob.kind', '=', 'link')
      .where(q.where(rolloutId) as Expression<SqlBool>) as unknown as PeopleQuery
  // Driven by the opt-outs (few) with a primary-key probe per person: a join let the planners walk
  // all of a 1M-member rollout's rows on every rollout page view.
  return db
    .selectFrom('mail_opt_outs as o')
    .select('o.user_id as user_id')
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('rollout_members as m')
          .select('m.user_id')
          .where('m.rollout_id', '=', rolloutId)
          .whereRef('m.user_id', '=', 'o.user_id'),
      ),
    ) as unknown as PeopleQuery
}
type PeopleQuery = SelectQueryBuilder<Database, 'reauth_links', { user_id: number }>

export type FunnelCounts = Record<FunnelStep, number>

export async function rolloutFunnel(db: Kysely<Database>, rolloutId: number, now: number): Promise<FunnelCounts> {
  const entries = await Promise.all(
    FUNNEL_STEPS.map(async (step) => {
      const row = await db
        .selectFrom(peopleAt(db, rolloutId, step, now).as('q'))
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
      return [step, Number(row.n)] as const
    }),
  )
  return Object.fromEntries(entries) as FunnelCounts
}

export interface FunnelPerson {
  userId: number
  email: string | null
  name: string | null
  cartaUserId: string | null
}

/** One page of the people at a step (each step of the chart is a filter of this list). */
export async function funnelPeople(
  db: Kysely<Database>,
  rolloutId: number,
  step: FunnelStep,
  now: number,
  page: { after?: number; limit?: number } = {},
): Promise<{ rows: FunnelPerson[]; next: number | null }> {
  const limit = Math.min(Math.max(page.limit ?? 50, 1), 500)
  const ids = await peopleAt(db, rolloutId, step, now)
    .$if(page.after !== undefined, (q) => q.where('p.user_id', '>', page.after!))
    .orderBy('p.user_id')
    .limit(limit + 1)
    .execute()
  const wanted = ids.slice(0, limit).map((r) => Number(r.user_id))
  const users =
    wanted.length === 0
      ? []
      : await db
          .selectFrom('end_users')
          .select(['id', 'email', 'name', 'carta_user_id'])
          .where('id', 'in', wanted)
          .orderBy('id')
          .execute()
  return {
    rows: users.map((u) => ({ userId: u.id, email: u.email, name: u.name, cartaUserId: u.carta_user_id })),
    next: ids.length > limit ? wanted[wanted.length - 1]! : null,
  }
}

/** One person's funnel in a rollout: the facts with their times, for the link page. */
export async function personFunnel(db: Kysely<Database>, rolloutId: number, userId: number) {
  const messages = await db
    .selectFrom('mail_outbox')
    .select(['id', 'step', 'status', 'reason', 'attempts', 'sent_at', 'created_at', 'to_address'])
    .where('rollout_id', '=', rolloutId)
    .where('user_id', '=', userId)
    .where('kind', '=', 'link')
    .orderBy('id', 'desc')
    .limit(20)
    .execute()
  const optOut = await db.selectFrom('mail_opt_outs').selectAll().where('user_id', '=', userId).executeTakeFirst()
  return { messages, optedOutAt: optOut?.at ?? null }
}
