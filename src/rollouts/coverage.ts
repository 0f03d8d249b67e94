// A rollout's coverage summary, read from the delta-maintained rollout_counts (one indexed
// range read): the dashboard never rescans grants (src/README.md, "Scale").
import type { Db } from '../db/index.js'
import { parseScopes } from '../scopes.js'

export interface CoverageSummary {
  members: number
  /** Users whose active grant is usable (covered + lacking). */
  withGrant: number
  covered: number
  lacking: number
  reconnect: number
  /** covered / members, 0–100 with one decimal; null when the rollout has no members. */
  coveragePct: number | null
  perScope: Array<{ scope: string; lacking: number }>
  perApp: Array<{ appId: number; key: string; name: string; status: string; users: number }>
}

/**
 * THE definition of coverage, used by every page, report, export, the CLI and the webhook: users
 * who hold every required scope ÷ every member of the rollout. Members who must reconnect are in
 * the denominator, so a connection that breaks lowers coverage (it never raises it).
 */
export const COVERAGE_DEFINITION =
  'Coverage = users holding every required scope ÷ all users in the rollout (users who must reconnect included).'
/** The same, short enough for a column header, a CSV key or a chat line. */
export const COVERAGE_FORMULA = 'covered ÷ all members'

/** covered / members × 100, one decimal; null when the rollout has no members. */
export function coveragePercent(covered: number, members: number): number | null {
  return members > 0 ? Math.round((covered / members) * 1000) / 10 : null
}

/** How every surface prints a coverage figure: "50.0%", or "—" when there is nobody to cover. */
export function formatCoverage(pct: number | null): string {
  return pct === null ? '—' : `${pct.toFixed(1)}%`
}

export async function rolloutSummary(db: Db, rolloutId: number, requiredScopes: string): Promise<CoverageSummary> {
  const rows = await db
    .selectFrom('rollout_counts')
    .select(['bucket', 'count'])
    .where('rollout_id', '=', rolloutId)
    .execute()
  const counts = new Map(rows.map((r) => [r.bucket, Number(r.count)]))
  const get = (b: string) => counts.get(b) ?? 0
  const appIds = [...counts.keys()].filter((b) => b.startsWith('app:')).map((b) => Number(b.slice(4)))
  const apps = appIds.length
    ? await db.selectFrom('oauth_apps').select(['id', 'key', 'name', 'status']).where('id', 'in', appIds).execute()
    : []
  return {
    members: get('members'),
    withGrant: get('covered') + get('lacking'),
    covered: get('covered'),
    lacking: get('lacking'),
    reconnect: get('reconnect'),
    coveragePct: coveragePercent(get('covered'), get('members')),
    perScope: parseScopes(requiredScopes).map((scope) => ({ scope, lacking: get(`missing:${scope}`) })),
    perApp: apps
      .map((a) => ({ appId: a.id, key: a.key, name: a.name, status: a.status, users: get(`app:${a.id}`) }))
      .filter((a) => a.users > 0)
      .sort((x, y) => y.users - x.users),
  }
}

export interface CoveredMember {
  userId: number
  email: string | null
  name: string | null
  cartaUserId: string | null
  appName: string | null
  /** When the grant that covers them was made: when they came over. */
  authorizedAt: number
}

/**
 * The rollout's covered users ("done"), most recently come over first, keyset paged over the
 * index rollout_members_by_time (rollout_id, needs_action, authorized_at, user_id).
 */
export async function listCovered(
  db: Db,
  rolloutId: number,
  options: { before?: { at: number; userId: number } | null; limit: number },
): Promise<{ rows: CoveredMember[]; next: { at: number; userId: number } | null }> {
  let q = db
    .selectFrom('rollout_members as m')
    .innerJoin('end_users as u', 'u.id', 'm.user_id')
    .leftJoin('oauth_apps as a', 'a.id', 'm.app_id')
    .select(['m.user_id', 'm.authorized_at', 'u.email', 'u.name', 'u.carta_user_id', 'a.name as app_name'])
    .where('m.rollout_id', '=', rolloutId)
    .where('m.needs_action', '=', 0)
  const before = options.before
  if (before)
    q = q.where((eb) =>
      eb.or([
        eb('m.authorized_at', '<', before.at),
        eb.and([eb('m.authorized_at', '=', before.at), eb('m.user_id', '<', before.userId)]),
      ]),
    )
  const found = await q
    .orderBy('m.authorized_at', 'desc')
    .orderBy('m.user_id', 'desc')
    .limit(options.limit + 1)
    .execute()
  const rows = found.slice(0, options.limit).map((r) => ({
    userId: r.user_id,
    email: r.email,
    name: r.name,
    cartaUserId: r.carta_user_id,
    appName: r.app_name,
    authorizedAt: Number(r.authorized_at ?? 0),
  }))
  const last = rows.at(-1)
  return { rows, next: found.length > options.limit && last ? { at: last.authorizedAt, userId: last.userId } : null }
}
