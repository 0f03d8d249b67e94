// Using a grant's access token: refresh it when it is about to expire (or Carta says 401), with
// exactly one refresh per grant across requests and processes. Carta rotates refresh tokens
// (each one can be spent once), so two concurrent refreshes would break the grant.
//
// Single-flight, two layers:
//  1. in this process, one promise per grant that concurrent callers share;
//  2. across processes, a lease on the grant_tokens row taken with one conditional UPDATE
//     (refresh_lock_owner/refresh_lock_until). Losers poll the row until `version` moves, then
//     use the tokens the winner stored.
import type { AppMetrics } from '../metrics.js'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Clock } from '../clock.js'
import type { CartaAppConfig, Config } from '../config.js'
import type { Db } from '../db/index.js'
import { preparedQuery } from '../db/prepared.js'
import type { Logger } from '../log.js'
import { recordAudit } from '../audit/events.js'
import { appConfigFor } from '../apps/apps.js'
import { CartaApiError } from '../carta/api.js'
import { CartaOAuthError, refreshTokens, type TokenSet } from '../carta/oauth-client.js'
import { parseScopes } from '../scopes.js'
import { DomainError } from '../errors.js'
import { changeGrant } from './change.js'
import type { TokenCipher } from './token-cipher.js'
import { readTokens, type StoredTokens } from './tokens.js'

export interface AccessDeps {
  config: Config
  db: Db
  clock: Clock
  cipher: TokenCipher
  refreshes: RefreshFlights
  log?: Logger
  /** Counts refresh outcomes and Carta calls when given (src/metrics.ts). */
  metrics?: Pick<AppMetrics, 'refreshes' | 'observeCarta'>
}

/** Refreshes in flight in this process: one promise per grant id, shared by concurrent callers. */
export type RefreshFlights = Map<number, Promise<StoredTokens>>

/** Refresh when the access token expires within this window (clock skew, request time). */
export const REFRESH_MARGIN_MS = 60_000
/** How long a refresh lease holds: longer than one token call with its timeout. */
const LEASE_MS = 30_000
/** Bound on how long a request waits for another process's refresh (wall time). */
const WAIT_MS = 15_000
const POLL_MS = 50

/** The grant can no longer be used (broken, revoked, gone): the user has to connect again. */
export function reconnectRequired(grantId: number, reason: string): DomainError<'grant.reconnect_required'> {
  return new DomainError('grant.reconnect_required', `Grant ${grantId} cannot be used: ${reason}.`, { grantId, reason })
}

/** Carta could not be reached (unavailable) or answered nonsense (bad_answer); the grant is unchanged. */
export function cartaFailure(kind: 'unavailable' | 'bad_answer', detail: string): DomainError {
  return kind === 'unavailable'
    ? new DomainError('carta.unavailable', `Carta is unavailable: ${detail}`, { detail })
    : new DomainError('carta.bad_answer', `Carta gave an unexpected answer: ${detail}`, { detail })
}

export interface AccessContext {
  grantId: number
  userId: number
  app: CartaAppConfig
}

// Runs before every use of a token: compiled once per database (db/prepared.ts).
const grantWithApp = preparedQuery((db: Db, grantId: number) =>
  db
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select(['grants.id', 'grants.user_id', 'grants.status', 'oauth_apps.key as app_key'])
    .where('grants.id', '=', grantId),
)

/**
 * Calls `fn` with a usable access token of the grant. Refreshes first when the token expires
 * within a minute; on a 401 from Carta's API refreshes once and retries (Carta's clock may be
 * ahead of ours). Other API errors reach the caller unchanged.
 */
export async function withAccessToken<T>(
  deps: AccessDeps,
  grantId: number,
  fn: (accessToken: string, ctx: AccessContext, used: { tokens: StoredTokens; refreshed: boolean }) => Promise<T>,
): Promise<T> {
  const [grant] = await grantWithApp(deps.db, grantId)
  if (grant?.status !== 'active') throw reconnectRequired(grantId, grant ? `grant ${grant.status}` : 'no grant')
  const app = appConfigFor(deps.config.apps, { key: grant.app_key })
  if (!app) throw cartaFailure('bad_answer', `app ${grant.app_key} no longer declared`)
  const ctx: AccessContext = { grantId, userId: grant.user_id, app }

  let tokens = await readTokens(deps.db, deps.cipher, grantId)
  if (!tokens) throw reconnectRequired(grantId, 'no stored tokens')
  let refreshed = false
  if (tokens.expiresAt !== null && tokens.expiresAt - deps.clock.now() < REFRESH_MARGIN_MS) {
    tokens = await refreshGrant(deps, ctx, tokens.version)
    refreshed = true
  }
  try {
    return await fn(tokens.accessToken, ctx, { tokens, refreshed })
  } catch (err) {
    if (!(err instanceof CartaApiError && err.kind === 'unauthorized') || refreshed) throw err
    deps.log?.info({ grantId }, 'Carta API answered 401; refreshing once and retrying')
  }
  tokens = await refreshGrant(deps, ctx, tokens.version)
  return fn(tokens.accessToken, ctx, { tokens, refreshed: true })
}

/**
 * Returns tokens newer than `seenVersion`: refreshes them if no one else is doing so, otherwise
 * waits for whoever is. Throws grant.reconnect_required, carta.unavailable or carta.bad_answer.
 */
export async function refreshGrant(deps: AccessDeps, ctx: AccessContext, seenVersion: number): Promise<StoredTokens> {
  // Layer 1, per app instance (two instances in one test process still meet at layer 2).
  const flights = deps.refreshes
  const running = flights.get(ctx.grantId)
  if (running) return running
  const promise = leaseOrWait(deps, ctx, seenVersion).finally(() => flights.delete(ctx.grantId))
  flights.set(ctx.grantId, promise)
  return promise
}

async function leaseOrWait(deps: AccessDeps, ctx: AccessContext, seenVersion: number): Promise<StoredTokens> {
  const { db, clock } = deps
  const owner = `${hostname()}:${process.pid}:${randomUUID()}`
  const deadline = performance.now() + WAIT_MS
  for (;;) {
    const now = clock.now()
    // Layer 2: one conditional UPDATE; affected rows = 1 means this process refreshes.
    const lease = await db
      .updateTable('grant_tokens')
      .set({ refresh_lock_owner: owner, refresh_lock_until: now + LEASE_MS })
      .where('grant_id', '=', ctx.grantId)
      .where('version', '=', seenVersion)
      .where((eb) => eb.or([eb('refresh_lock_until', 'is', null), eb('refresh_lock_until', '<', now)]))
      .executeTakeFirst()
    if (Number(lease.numUpdatedRows) === 1) return performRefresh(deps, ctx, owner, seenVersion)

    const row = await db
      .selectFrom('grant_tokens')
      .select(['version'])
      .where('grant_id', '=', ctx.grantId)
      .executeTakeFirst()
    if (!row) throw reconnectRequired(ctx.grantId, 'tokens removed')
    if (row.version !== seenVersion) {
      // Someone else refreshed (or the grant was replaced): use what they stored.
      const fresh = await readTokens(db, deps.cipher, ctx.grantId)
      await assertStillActive(db, ctx.grantId)
      if (!fresh) throw reconnectRequired(ctx.grantId, 'tokens removed')
      return fresh
    }
    if (performance.now() > deadline) throw cartaFailure('unavailable', 'timed out waiting for another refresh')
    await sleep(POLL_MS)
  }
}

async function assertStillActive(db: Db, grantId: number): Promise<void> {
  const grant = await db.selectFrom('grants').select(['status']).where('id', '=', grantId).executeTakeFirst()
  if (grant?.status !== 'active') throw reconnectRequired(grantId, `grant ${grant?.status ?? 'gone'}`)
}

async function releaseLease(db: Db, grantId: number, owner: string): Promise<void> {
  await db
    .updateTable('grant_tokens')
    .set({ refresh_lock_owner: null, refresh_lock_until: null })
    .where('grant_id', '=', grantId)
    .where('refresh_lock_owner', '=', owner)
    .execute()
}

/** The grant breaks and its refresh lease goes, in one transaction: no waiter is left spinning. */
async function markBroken(deps: AccessDeps, grantId: number, reason: string): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    await changeGrant(trx, deps.cipher, { kind: 'broken', grantId, reason }, deps.clock.now())
    await trx
      .updateTable('grant_tokens')
      .set({ refresh_lock_owner: null, refresh_lock_until: null })
      .where('grant_id', '=', grantId)
      .execute()
  })
}

async function performRefresh(
  deps: AccessDeps,
  ctx: AccessContext,
  owner: string,
  seenVersion: number,
): Promise<StoredTokens> {
  const { db, clock, cipher, config } = deps
  const stored = await readTokens(db, cipher, ctx.grantId)
  if (!stored || stored.version !== seenVersion) {
    await releaseLease(db, ctx.grantId, owner)
    if (!stored) throw reconnectRequired(ctx.grantId, 'tokens removed')
    return stored
  }
  if (!stored.refreshToken) {
    // Expired and nothing to refresh with: only a new authorization helps.
    await markBroken(deps, ctx.grantId, 'access token expired and Carta issued no refresh token')
    deps.metrics?.refreshes.inc({ outcome: 'no_refresh_token' })
    throw reconnectRequired(ctx.grantId, 'no refresh token')
  }

  let fresh: TokenSet
  try {
    fresh = await refreshTokens(ctx.app, stored.refreshToken, {
      timeoutMs: config.cartaTimeoutMs,
      now: clock.now(),
      ...(deps.metrics ? { observe: deps.metrics.observeCarta } : {}),
    })
    deps.metrics?.refreshes.inc({ outcome: 'refreshed' })
  } catch (err) {
    const e = err instanceof CartaOAuthError ? err : new CartaOAuthError('unavailable', 'refresh failed')
    deps.metrics?.refreshes.inc({ outcome: e.kind === 'invalid_grant' ? 'invalid_grant' : 'failed' })
    if (e.kind !== 'invalid_grant') {
      await releaseLease(db, ctx.grantId, owner)
      deps.log?.warn(
        { grantId: ctx.grantId, kind: e.kind, reason: e.message },
        'token refresh failed; grant left as is',
      )
      throw cartaFailure(e.kind === 'unavailable' ? 'unavailable' : 'bad_answer', e.message)
    }
    // invalid_grant: another process may have rotated the token meanwhile (its lease expired
    // under ours, or it never saw ours). Re-read before declaring the grant broken.
    const again = await readTokens(db, cipher, ctx.grantId)
    if (again && again.version !== stored.version) {
      await releaseLease(db, ctx.grantId, owner)
      deps.log?.info(
        { grantId: ctx.grantId },
        'invalid_grant on refresh, but the token was already rotated elsewhere; using the new one',
      )
      return again
    }
    await markBroken(deps, ctx.grantId, 'Carta rejected the refresh token (invalid_grant)')
    deps.log?.warn(
      { grantId: ctx.grantId, userId: ctx.userId },
      'refresh token rejected (invalid_grant): grant marked broken',
    )
    throw reconnectRequired(ctx.grantId, 'invalid_grant')
  }

  const now = clock.now()
  // RFC 6749 §6: a new refresh token MAY be issued; when none is, the old one stays valid.
  const refreshToken = fresh.refreshToken ?? stored.refreshToken
  const access = cipher.seal(fresh.accessToken)
  const refresh = cipher.seal(refreshToken, access.keyId)
  const result = await db.transaction().execute(async (trx) => {
    const written = await trx
      .updateTable('grant_tokens')
      .set((eb) => ({
        key_id: access.keyId,
        access_token: access.value,
        refresh_token: refresh.value,
        token_type: fresh.tokenType,
        access_expires_at: fresh.expiresAt,
        version: eb('version', '+', 1),
        refresh_lock_owner: null,
        refresh_lock_until: null,
        refreshed_at: now,
        updated_at: now,
      }))
      .where('grant_id', '=', ctx.grantId)
      .where('version', '=', stored.version)
      .executeTakeFirst()
    if (Number(written.numUpdatedRows) !== 1) return 'lost' as const

    // RFC 6749 §5.1: an absent `scope` means unchanged; a present one is what the token holds now.
    const scopes =
      fresh.scope === undefined
        ? { changed: false }
        : await changeGrant(
            trx,
            cipher,
            { kind: 'scopes', grantId: ctx.grantId, scopes: parseScopes(fresh.scope), via: 'refresh' },
            now,
          )
    const grant = await trx
      .selectFrom('grants')
      .select(['app_id'])
      .where('id', '=', ctx.grantId)
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'grant.refreshed',
      actor: 'system',
      userId: ctx.userId,
      grantId: ctx.grantId,
      appId: grant.app_id,
      details: {
        version: stored.version + 1,
        expiresAt: fresh.expiresAt,
        scopeReported: fresh.scope !== undefined,
        refreshTokenRotated: fresh.refreshToken !== null,
      },
    })
    return scopes.changed ? ('changed' as const) : ('same' as const)
  })
  if (result === 'lost') {
    // Our lease expired and another process stored newer tokens first; theirs win.
    const current = await readTokens(db, cipher, ctx.grantId)
    if (!current) throw reconnectRequired(ctx.grantId, 'tokens removed')
    return current
  }
  deps.log?.info({ grantId: ctx.grantId, scopesChanged: result === 'changed' }, 'access token refreshed')
  return {
    accessToken: fresh.accessToken,
    refreshToken,
    expiresAt: fresh.expiresAt,
    tokenType: fresh.tokenType,
    version: stored.version + 1,
    keyId: access.keyId,
  }
}
