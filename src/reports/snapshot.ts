// Coverage of every active rollout, computed EXACTLY with set-based GROUP BY queries over
// rollout_members / rollout_member_missing / reauth_links (not from the live rollout_counts,
// which are only cross-checked: a disagreement is logged as a warning).
import { type FunnelCounts, rolloutFunnel } from '../mail/funnel.js'
import { coveragePercent } from '../rollouts/coverage.js'
import { storedCounts } from '../rollouts/membership.js'
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
import { DAY_MS } from '../time.js'

export interface AppUsers {
  appId: number
  appKey: string
  appName: string
  /** Members on this app with an active grant (covered or lacking). */
  users: number
}

export interface RolloutCoverage {
  rolloutId: number
  name: string
  targetApp: string
  requiredScopes: string[]
  /** Every end user tracked by the rollout. */
  members: number
  /** Members with an active grant: covered + lacking (reconnect excluded). */
  activeUsers: number
  covered: number
  lacking: number
  reconnect: number
  /** coveragePercent(covered, members) (rollouts/coverage.ts): the one definition. */
  coveragePct: number | null
  /** Per required scope: how many members lack it (rows of rollout_member_missing). */
  lackingByScope: Record<string, number>
  /**
   * Lacking members whose scopes nobody knows (imported without them): counted as lacking every
   * required scope above, and reported on their own so they read as unknown rather than missing.
   */
  scopesUnknown: number
  usersByApp: AppUsers[]
  links: { issued: number; used: number; issued24h: number; used24h: number }
  /**
   * People per funnel step at the time of the report (mail/funnel.ts, the rollout page's funnel).
   * Stored in the snapshot's detail JSON; absent from snapshots taken before reports carried it.
   */
  funnel?: FunnelCounts
}

export interface Snapshot {
  takenAt: number
  rollouts: RolloutCoverage[]
}

/** Detail stored as JSON next to the totals in coverage_snapshots. */
export interface SnapshotDetail {
  targetApp: string
  lackingByScope: Record<string, number>
  usersByApp: AppUsers[]
  /** Absent in snapshots taken before imports existed: 0. */
  scopesUnknown?: number
  funnel?: FunnelCounts
}

/**
 * Reads the coverage of every active rollout at `now`. `onProgress` is called once per rollout
 * (the CLI prints it to stderr). Reads only: safe to run beside live traffic.
 */
export async function computeSnapshot(
  db: Kysely<Database>,
  now: number,
  options: { log?: Logger; onProgress?: (done: number, total: number, name: string) => void } = {},
): Promise<Snapshot> {
  const rollouts = await db
    .selectFrom('rollouts')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'rollouts.app_id')
    .select(['rollouts.id', 'rollouts.name', 'rollouts.required_scopes', 'oauth_apps.key as app_key'])
    .where('rollouts.status', '=', 'active')
    // A rollout still measuring its users has partial figures: it joins reports once built.
    .where('rollouts.build_status', '=', 'ready')
    .orderBy('rollouts.id')
    .execute()
  const apps = new Map(
    (await db.selectFrom('oauth_apps').select(['id', 'key', 'name']).execute()).map((a) => [a.id, a]),
  )

  const result: RolloutCoverage[] = []
  for (const [index, rollout] of rollouts.entries()) {
    const coverage = await rolloutCoverage(db, rollout, apps, now)
    await crossCheckCounters(db, coverage, options.log)
    result.push(coverage)
    options.onProgress?.(index + 1, rollouts.length, rollout.name)
  }
  return { takenAt: now, rollouts: result }
}

async function rolloutCoverage(
  db: Kysely<Database>,
  rollout: { id: number; name: string; required_scopes: string; app_key: string },
  apps: Map<number, { id: number; key: string; name: string }>,
  now: number,
): Promise<RolloutCoverage> {
  // One pass over the rollout's members gives both the state totals and the per-app split.
  const byStateApp = await db
    .selectFrom('rollout_members')
    .select(['state', 'app_id', 'reason', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rollout.id)
    .groupBy(['state', 'app_id', 'reason'])
    .execute()
  const states = { covered: 0, lacking: 0, reconnect: 0 }
  const perApp = new Map<number, number>()
  let scopesUnknown = 0
  for (const row of byStateApp) {
    const n = Number(row.n)
    if (row.reason === 'scopes_unknown') scopesUnknown += n
    if (row.state in states) states[row.state as keyof typeof states] += n
    if (row.state !== 'reconnect' && row.app_id !== null) perApp.set(row.app_id, (perApp.get(row.app_id) ?? 0) + n)
  }

  const required = parseScopes(rollout.required_scopes)
  const lackingByScope: Record<string, number> = Object.fromEntries(required.map((s) => [s, 0]))
  const missing = await db
    .selectFrom('rollout_member_missing')
    .select(['scope', (eb) => eb.fn.countAll().as('n')])
    .where('rollout_id', '=', rollout.id)
    .groupBy('scope')
    .execute()
  for (const row of missing) lackingByScope[row.scope] = Number(row.n)

  const since = now - DAY_MS
  const links = await db
    .selectFrom('reauth_links')
    .select((eb) => [
      eb.fn.countAll().as('issued'),
      eb.fn.sum<number>(eb.case().when('used_at', 'is not', null).then(1).else(0).end()).as('used'),
      eb.fn.sum<number>(eb.case().when('issued_at', '>=', since).then(1).else(0).end()).as('issued24h'),
      eb.fn.sum<number>(eb.case().when('used_at', '>=', since).then(1).else(0).end()).as('used24h'),
    ])
    .where('rollout_id', '=', rollout.id)
    .executeTakeFirstOrThrow()
  const funnel = await rolloutFunnel(db, rollout.id, now)

  const activeUsers = states.covered + states.lacking
  return {
    rolloutId: rollout.id,
    name: rollout.name,
    targetApp: rollout.app_key,
    requiredScopes: required,
    members: states.covered + states.lacking + states.reconnect,
    activeUsers,
    covered: states.covered,
    lacking: states.lacking,
    reconnect: states.reconnect,
    coveragePct: coveragePercent(states.covered, states.covered + states.lacking + states.reconnect),
    lackingByScope,
    scopesUnknown,
    usersByApp: [...perApp.entries()]
      .map(([appId, users]) => ({
        appId,
        appKey: apps.get(appId)?.key ?? `app-${appId}`,
        appName: apps.get(appId)?.name ?? `app ${appId}`,
        users,
      }))
      .sort((a, b) => b.users - a.users || a.appId - b.appId),
    links: {
      issued: Number(links.issued ?? 0),
      used: Number(links.used ?? 0),
      issued24h: Number(links.issued24h ?? 0),
      used24h: Number(links.used24h ?? 0),
    },
    funnel,
  }
}

/** The dashboard's live counters should equal the exact counts; say so in the log when not. */
async function crossCheckCounters(db: Kysely<Database>, c: RolloutCoverage, log?: Logger): Promise<void> {
  if (!log) return
  const counters = await storedCounts(db, c.rolloutId)
  if (counters.size === 0) return
  const exact: Record<string, number> = {
    members: c.members,
    covered: c.covered,
    lacking: c.lacking,
    reconnect: c.reconnect,
  }
  for (const [scope, n] of Object.entries(c.lackingByScope)) exact[`missing:${scope}`] = n
  const differences = Object.entries(exact)
    .filter(([bucket, n]) => (counters.get(bucket) ?? 0) !== n)
    .map(([bucket, n]) => ({ bucket, counter: counters.get(bucket) ?? 0, exact: n }))
  if (differences.length > 0)
    log.warn({ rolloutId: c.rolloutId, differences }, 'rollout counters disagree with the exact report counts')
}
