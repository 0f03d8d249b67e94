// Scope discovery (src/README.md, "Imports"): for an active grant whose scopes are unknown (imported
// without them) and whose tokens Scope Ledger holds, call one cheap read-only Carta endpoint per
// scope of its app (src/carta/probes.ts): 200 proves the scope held, Carta's 403 INSUFFICIENT_SCOPE
// proves it not held (https://docs.carta.com/carta/docs/error-codes), anything else proves nothing
// and the scope stays unproved. A 401 refreshes once (withAccessToken) and retries; a second 401
// marks the grant broken. Every request takes one unit of the client id's shared budget (budget.ts);
// a 429 blocks the client id for every instance until Retry-After / RateLimit-Reset. The result is
// recorded through changeGrant (scope source `probed`, evidence in the audit trail) in the same
// transaction as the discovery row, so rollout counters move with it. Work resumes after restarts:
// the queue is the grants themselves, a lease keeps two instances off one grant.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { CartaApiError } from '../carta/api.js'
import { findProbe, type ProbeResult, probeOrder, probeScope } from '../carta/probes.js'
import type { AppDeps } from '../deps.js'
import { isDomainError } from '../errors.js'
import { type AccessDeps, withAccessToken } from '../grants/access.js'
import { changeGrant } from '../grants/change.js'
import type { Job } from '../jobs/runner.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
import { blockUntil, steadyRate, takeRequest } from './budget.js'

/** How long one instance holds a grant it is probing (renewed by finishing, released on failure). */
const LEASE_MS = 5 * 60_000
/** A probe answer that proves nothing (timeout, 5xx): try the grant again this much later. */
const RETRY_MS = 15 * 60_000
/** Carta said 429 without saying how long: wait a full minute window. */
const DEFAULT_BLOCK_MS = 60_000

export type DiscoveryDeps = AccessDeps & Pick<AppDeps, 'config'> & { log: Logger }

export interface Evidence {
  scope: string
  outcome: ProbeResult['outcome']
  status: number | null
  endpoint: string | null
  reason?: string
  at: number
}

export type GrantOutcome = 'probed' | 'broken' | 'retry' | 'stopped'

interface Control {
  shouldStop: () => boolean
  /** Wall time: Carta's rate limit is counted in real seconds, whatever the app's clock says. */
  wallNow: () => number
}

const defaultControl: Control = { shouldStop: () => false, wallNow: () => Date.now() }

/** Waits for one request of the client id's shared budget; false when asked to stop meanwhile. */
async function waitForBudget(deps: DiscoveryDeps, clientId: string, control: Control): Promise<boolean> {
  for (;;) {
    if (control.shouldStop()) return false
    const wait = await takeRequest(deps.db, clientId, deps.config.discoveryRate, control.wallNow())
    if (wait === 0) return true
    await sleep(Math.min(wait, 1000))
  }
}

/** Probes every scope of the grant's app and records the result. */
export async function discoverGrant(
  deps: DiscoveryDeps,
  grantId: number,
  control: Control = defaultControl,
): Promise<GrantOutcome> {
  const grant = await deps.db
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select(['grants.user_id', 'oauth_apps.scopes', 'oauth_apps.client_id'])
    .where('grants.id', '=', grantId)
    .executeTakeFirstOrThrow()
  const evidence: Evidence[] = []
  const context: { issuerId?: string } = {}
  for (const scope of probeOrder(parseScopes(grant.scopes))) {
    const probe = findProbe(scope)
    if (!probe || (probe.needs.includes('issuerId') && !context.issuerId)) {
      // No request: nothing can prove this scope with what the token has shown so far.
      evidence.push({
        scope,
        outcome: 'unknown',
        status: null,
        endpoint: null,
        reason: probe ? 'NEEDS_ISSUER_ID' : 'NO_PROBE',
        at: deps.clock.now(),
      })
      continue
    }
    let result: ProbeResult
    for (;;) {
      if (!(await waitForBudget(deps, grant.client_id, control))) return 'stopped'
      try {
        result = await withAccessToken(deps, grantId, async (token, ctx) => {
          const r = await probeScope(ctx.app, token, scope, {
            ...context,
            timeoutMs: deps.config.cartaTimeoutMs,
            now: () => deps.clock.now(),
          })
          // withAccessToken refreshes once on a 401 and calls again.
          if (r.outcome === 'unauthorized') throw new CartaApiError('unauthorized', `probe for ${scope}: 401`)
          return r
        })
      } catch (err) {
        if (err instanceof CartaApiError && err.kind === 'unauthorized') {
          await deps.db
            .transaction()
            .execute((trx) =>
              changeGrant(
                trx,
                deps.cipher,
                { kind: 'broken', grantId, reason: 'Carta refused the token (401) after a refresh' },
                deps.clock.now(),
              ),
            )
          await finish(deps, grantId, 'done', evidence)
          return 'broken'
        }
        // The refresh failed for good (invalid_grant: already marked broken by the refresh).
        if (isDomainError(err, 'grant.reconnect_required')) {
          await finish(deps, grantId, 'done', evidence)
          return 'broken'
        }
        throw err
      }
      if (result.outcome !== 'rate_limited') break
      const until = control.wallNow() + (result.retryAfterMs ?? DEFAULT_BLOCK_MS)
      deps.log.warn({ clientId: grant.client_id, until: new Date(until).toISOString() }, 'Carta rate limit (429)')
      await blockUntil(deps.db, grant.client_id, until)
    }
    if (result.learned?.issuerId) context.issuerId = result.learned.issuerId
    evidence.push({
      scope,
      outcome: result.outcome,
      status: result.status,
      endpoint: result.endpoint,
      ...(result.reason ? { reason: result.reason } : {}),
      at: result.at,
    })
  }
  // A probe that could have decided but Carta did not answer (timeout, 5xx): try again later.
  const transient = evidence.some(
    (e) =>
      e.outcome === 'unknown' &&
      (e.reason === 'TIMEOUT' || e.reason === 'UNREACHABLE' || (e.status !== null && e.status >= 500)),
  )
  if (transient) {
    await finish(deps, grantId, 'pending', evidence)
    return 'retry'
  }
  const held = evidence.filter((e) => e.outcome === 'held').map((e) => e.scope)
  const now = deps.clock.now()
  await deps.db.transaction().execute(async (trx) => {
    await changeGrant(trx, deps.cipher, { kind: 'scopes', grantId, scopes: held, via: 'probe', evidence }, now)
    await writeDiscovery(trx, grantId, 'done', evidence, now)
  })
  deps.log.info(
    { grantId, held, unknown: evidence.filter((e) => e.outcome === 'unknown').map((e) => e.scope) },
    'scopes discovered',
  )
  return 'probed'
}

async function writeDiscovery(
  db: AccessDeps['db'],
  grantId: number,
  status: 'done' | 'pending',
  evidence: Evidence[],
  now: number,
): Promise<void> {
  await db
    .updateTable('scope_discoveries')
    .set((eb) => ({
      status,
      evidence: JSON.stringify(evidence),
      attempts: eb('attempts', '+', 1),
      next_attempt_at: status === 'pending' ? now + RETRY_MS : 0,
      lock_owner: null,
      lock_until: null,
      updated_at: now,
    }))
    .where('grant_id', '=', grantId)
    .execute()
}

async function finish(deps: DiscoveryDeps, grantId: number, status: 'done' | 'pending', evidence: Evidence[]) {
  await writeDiscovery(deps.db, grantId, status, evidence, deps.clock.now())
}

/**
 * The next grant to probe, leased to `owner`: users in an active rollout who need action first,
 * then the rest, oldest grant first.
 */
export async function claimNext(deps: Pick<DiscoveryDeps, 'db' | 'clock'>, owner: string): Promise<number | null> {
  const now = deps.clock.now()
  const base = () =>
    deps.db
      .selectFrom('grants as g')
      .innerJoin('grant_tokens as t', 't.grant_id', 'g.id')
      .leftJoin('scope_discoveries as d', 'd.grant_id', 'g.id')
      .select('g.id')
      .where('g.scopes_source', '=', 'unknown')
      .where('g.status', '=', 'active')
      .where((eb) =>
        eb.or([
          eb('d.grant_id', 'is', null),
          eb.and([
            eb('d.status', '=', 'pending'),
            eb('d.next_attempt_at', '<=', now),
            eb.or([eb('d.lock_until', 'is', null), eb('d.lock_until', '<', now)]),
          ]),
        ]),
      )
      .orderBy('g.id')
      .limit(20)
  // Named rollout ids: each EXISTS is then a primary-key lookup (rollout_id, user_id).
  const active = (await deps.db.selectFrom('rollouts').select('id').where('status', '=', 'active').execute()).map(
    (r) => r.id,
  )
  const inRollout = active.length
    ? await base()
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('rollout_members as m')
              .select('m.user_id')
              .where('m.rollout_id', 'in', active)
              .whereRef('m.user_id', '=', 'g.user_id')
              .where('m.needs_action', '=', 1),
          ),
        )
        .execute()
    : []
  const candidates = inRollout.length ? inRollout : await base().execute()
  for (const { id } of candidates) {
    const inserted = await deps.db
      .insertInto('scope_discoveries')
      .values({ grant_id: id, status: 'pending', lock_owner: owner, lock_until: now + LEASE_MS, updated_at: now })
      .onConflict((oc) => oc.column('grant_id').doNothing())
      .executeTakeFirst()
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return id
    const leased = await deps.db
      .updateTable('scope_discoveries')
      .set({ lock_owner: owner, lock_until: now + LEASE_MS, updated_at: now })
      .where('grant_id', '=', id)
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', now)]))
      .executeTakeFirst()
    if (Number(leased.numUpdatedRows) === 1) return id
  }
  return null
}

export interface DiscoveryStatus {
  paused: boolean
  /** Grants whose scopes are unknown and which can be probed (tokens held). */
  pending: number
  /** Grants probed so far. */
  done: number
  /** Unknown grants without tokens: nothing can probe them. */
  withoutTokens: number
  /** Seconds left at the rate the budget sustains (each grant costs up to one request per probe-able scope of its app). */
  estimateSeconds: number
}

export async function discoveryStatus(deps: Pick<DiscoveryDeps, 'db' | 'config'>): Promise<DiscoveryStatus> {
  const { db } = deps
  const settings = await db.selectFrom('discovery_settings').select('paused').where('id', '=', 1).executeTakeFirst()
  const unknown = await db
    .selectFrom('grants as g')
    .leftJoin('grant_tokens as t', 't.grant_id', 'g.id')
    .select((eb) => [eb.fn.countAll().as('n'), eb.fn.count('t.grant_id').as('tokens')])
    .where('g.scopes_source', '=', 'unknown')
    .where('g.status', '=', 'active')
    .executeTakeFirstOrThrow()
  const done = await db
    .selectFrom('scope_discoveries')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('status', '=', 'done')
    .executeTakeFirstOrThrow()
  const pending = Number(unknown.tokens)
  // Requests left: per app, its waiting grants times its probe-able scopes (one request each at
  // most), at the rate the shared budget sustains. One instance probes one grant at a time.
  const byApp = await db
    .selectFrom('grants as g')
    .innerJoin('grant_tokens as t', 't.grant_id', 'g.id')
    .innerJoin('oauth_apps as a', 'a.id', 'g.app_id')
    .select((eb) => ['a.scopes', eb.fn.countAll().as('n')])
    .where('g.scopes_source', '=', 'unknown')
    .where('g.status', '=', 'active')
    .groupBy(['g.app_id', 'a.scopes'])
    .execute()
  const requests = byApp.reduce(
    (sum, a) => sum + Number(a.n) * Math.max(1, parseScopes(a.scopes).filter((s) => findProbe(s)).length),
    0,
  )
  const perSecondRate = steadyRate(deps.config.discoveryRate)
  return {
    paused: settings?.paused === 1,
    pending,
    done: Number(done.n),
    withoutTokens: Number(unknown.n) - pending,
    estimateSeconds: Math.ceil(requests / perSecondRate),
  }
}

export async function setDiscoveryPaused(
  db: AccessDeps['db'],
  paused: boolean,
  actor: string,
  now: number,
): Promise<void> {
  const values = { paused: paused ? 1 : 0, updated_by: actor, updated_at: now }
  await db
    .insertInto('discovery_settings')
    .values({ id: 1, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute()
}

export interface DiscoveryRun {
  probed: number
  broken: number
  retry: number
  paused: boolean
}

/**
 * Probes grants until none is left, `limit` grants were handled, the operator paused discovery,
 * or `shouldStop` says so. The background job and `discover-scopes` both run this.
 */
export async function runDiscovery(
  deps: DiscoveryDeps,
  options: { limit?: number; shouldStop?: () => boolean; onGrant?: (run: DiscoveryRun) => void } = {},
): Promise<DiscoveryRun> {
  const owner = `${hostname()}:${process.pid}:${randomUUID()}`
  const run: DiscoveryRun = { probed: 0, broken: 0, retry: 0, paused: false }
  const shouldStop = options.shouldStop ?? (() => false)
  const control: Control = { shouldStop, wallNow: () => Date.now() }
  while (!shouldStop() && (options.limit === undefined || run.probed + run.broken + run.retry < options.limit)) {
    const settings = await deps.db
      .selectFrom('discovery_settings')
      .select('paused')
      .where('id', '=', 1)
      .executeTakeFirst()
    if (settings?.paused === 1) {
      run.paused = true
      break
    }
    const grantId = await claimNext(deps, owner)
    if (grantId === null) break
    let outcome: GrantOutcome
    try {
      outcome = await discoverGrant(deps, grantId, control)
    } catch (err) {
      deps.log.error({ grantId, err: (err as Error).message }, 'scope discovery failed for a grant')
      await finish(deps, grantId, 'pending', [])
      outcome = 'retry'
    }
    if (outcome === 'stopped') {
      await deps.db
        .updateTable('scope_discoveries')
        .set({ lock_owner: null, lock_until: null })
        .where('grant_id', '=', grantId)
        .execute()
      break
    }
    run[outcome] += 1
    options.onGrant?.(run)
  }
  return run
}

/** The background job: a pass probes until the queue is empty, paused, or the app stops. */
export function discoveryJob(deps: DiscoveryDeps): Job<DiscoveryRun> {
  let stopped = false
  return {
    everyMs: 60_000,
    run: async (log) => {
      const run = await runDiscovery({ ...deps, log }, { shouldStop: () => stopped })
      if (run.probed + run.broken + run.retry > 0) log.info({ ...run }, 'scope discovery pass')
      return run
    },
    stop: async () => {
      stopped = true
    },
  }
}
