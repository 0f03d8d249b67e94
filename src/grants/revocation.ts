// Revocation queue: superseded and operator-revoked grants leave rows in token_revocations; this
// worker sends them to Carta's revocation endpoint (RFC 7009) with retries and backoff.
// Several processes may run it at once: each row is leased with one conditional UPDATE on
// lock_until, so a token is never sent twice concurrently.
import type { AppMetrics } from '../metrics.js'
import { randomInt } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Kysely, Transaction } from 'kysely'
import type { Db } from '../db/index.js'
import type { Database } from '../db/schema.js'
import type { Job } from '../jobs/runner.js'
import type { Logger } from '../log.js'
import { recordAudit } from '../audit/events.js'
import { appConfigFor } from '../apps/apps.js'
import { CartaOAuthError, type TokenSet, revokeToken } from '../carta/oauth-client.js'
import type { TokenCipher } from './token-cipher.js'

export interface RevocationDeps {
  config: Config
  db: Db
  clock: Clock
  cipher: TokenCipher
  log?: Logger
  /** Counts failed attempts and Carta calls when given (src/metrics.ts). */
  metrics?: Pick<AppMetrics, 'revocationFailures' | 'observeCarta'>
}

export const REVOCATION_INTERVAL_MS = 15_000

/** The revocation worker: every 15 s, and when kicked after a grant transaction queued rows. */
export function revocationJob(deps: RevocationDeps): Job {
  return {
    everyMs: REVOCATION_INTERVAL_MS,
    run: async (log) => {
      const result = await processDueRevocations({ ...deps, log }, { limit: 100 })
      if (result.sent || result.failed) log.info(result, 'revocation run')
      return result
    },
  }
}

/** After this many failed attempts a row is 'failed' (shown on /admin/apps) and no longer retried. */
export const MAX_ATTEMPTS = 10
const BASE_DELAY_MS = 60_000
const MAX_DELAY_MS = 6 * 60 * 60 * 1000
/** A lease longer than one revocation call (timeout) so a slow send is not picked up twice. */
const LEASE_MS = 2 * 60_000

/**
 * Queues RFC 7009 revocation of a grant's stored tokens: the refresh token first (revoking it
 * SHOULD also end the access tokens of the same grant, RFC 7009 §2.1), then the access token for
 * servers that do not. The ciphertext is copied as is; the worker decrypts it when it sends.
 */
export async function enqueueGrantRevocation(
  trx: Transaction<Database>,
  grantId: number,
  now: number,
): Promise<number> {
  const tokens = await trx
    .selectFrom('grant_tokens')
    .innerJoin('grants', 'grants.id', 'grant_tokens.grant_id')
    .select(['grant_tokens.key_id', 'grant_tokens.access_token', 'grant_tokens.refresh_token', 'grants.app_id'])
    .where('grant_tokens.grant_id', '=', grantId)
    .executeTakeFirst()
  if (!tokens) return 0
  const rows = [
    ...(tokens.refresh_token ? [{ token: tokens.refresh_token, token_type_hint: 'refresh_token' as const }] : []),
    { token: tokens.access_token, token_type_hint: 'access_token' as const },
  ]
  for (const row of rows) {
    await trx
      .insertInto('token_revocations')
      .values({
        grant_id: grantId,
        app_id: tokens.app_id,
        key_id: tokens.key_id,
        ...row,
        next_attempt_at: now,
        last_error: null,
        lock_until: null,
        created_at: now,
        done_at: null,
      })
      .execute()
  }
  return rows.length
}

/**
 * Queues tokens Carta issued that the ledger did not record (a callback refused after the code
 * exchange: an identity mismatch, an unrequested scope, a failed user lookup or transaction).
 * Carta's refresh tokens do not expire by time, so such tokens would stay usable at Carta for
 * good; they are sealed and queued like a superseded grant's, with no grant (RFC 7009 §2.1: the
 * refresh token first).
 */
export async function enqueueUnrecordedTokens(
  db: Kysely<Database>,
  cipher: TokenCipher,
  appId: number,
  tokens: Pick<TokenSet, 'accessToken' | 'refreshToken'>,
  now: number,
): Promise<number> {
  const access = cipher.seal(tokens.accessToken)
  const rows = [
    ...(tokens.refreshToken
      ? [{ token: cipher.seal(tokens.refreshToken, access.keyId).value, token_type_hint: 'refresh_token' as const }]
      : []),
    { token: access.value, token_type_hint: 'access_token' as const },
  ]
  await db
    .insertInto('token_revocations')
    .values(
      rows.map((row) => ({
        grant_id: null,
        app_id: appId,
        key_id: access.keyId,
        ...row,
        next_attempt_at: now,
        last_error: null,
        lock_until: null,
        created_at: now,
        done_at: null,
      })),
    )
    .execute()
  return rows.length
}

/** 1 min × 2^(attempts−1), capped at 6 h, ±20 % jitter so many failed rows do not retry in lockstep. */
export function backoffMs(attempts: number, jitter: (max: number) => number = (max) => randomInt(max + 1)): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1))
  const spread = Math.floor(base * 0.2)
  return base - spread + jitter(2 * spread)
}

export interface RevocationRun {
  sent: number
  failed: number
  /** Rows another process held. */
  skipped: number
}

/** Sends up to `limit` due revocations (optionally only those of one grant). Never throws for a Carta failure. */
export async function processDueRevocations(
  deps: RevocationDeps,
  options: { limit?: number; grantId?: number } = {},
): Promise<RevocationRun> {
  const { db, clock } = deps
  const now = clock.now()
  let q = db
    .selectFrom('token_revocations')
    .select(['id'])
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', now)]))
  if (options.grantId !== undefined) q = q.where('grant_id', '=', options.grantId)
  const due = await q
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(options.limit ?? 50)
    .execute()
  const run: RevocationRun = { sent: 0, failed: 0, skipped: 0 }
  for (const { id } of due) {
    const outcome = await sendOne(deps, id)
    run[outcome]++
  }
  return run
}

async function sendOne(deps: RevocationDeps, id: number): Promise<keyof RevocationRun> {
  const { db, clock, cipher, config } = deps
  const leasedAt = clock.now()
  // Lease: exactly one process gets numUpdatedRows = 1.
  const lease = await db
    .updateTable('token_revocations')
    .set({ lock_until: leasedAt + LEASE_MS })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<', leasedAt)]))
    .executeTakeFirst()
  if (Number(lease.numUpdatedRows) !== 1) return 'skipped'

  const row = await db
    .selectFrom('token_revocations')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'token_revocations.app_id')
    .select([
      'token_revocations.id',
      'token_revocations.grant_id',
      'token_revocations.app_id',
      'token_revocations.key_id',
      'token_revocations.token',
      'token_revocations.token_type_hint',
      'token_revocations.attempts',
      'oauth_apps.key as app_key',
    ])
    .where('token_revocations.id', '=', id)
    .executeTakeFirstOrThrow()
  const grant =
    row.grant_id === null
      ? undefined
      : await db.selectFrom('grants').select(['user_id']).where('id', '=', row.grant_id).executeTakeFirst()

  let error: string | null = null
  const appConfig = appConfigFor(config.apps, { key: row.app_key })
  if (!appConfig) {
    error = `app "${row.app_key}" is no longer declared in the apps file (no client secret)`
  } else {
    try {
      const token = cipher.open({ keyId: row.key_id, value: row.token })
      await revokeToken(appConfig, token, row.token_type_hint, {
        timeoutMs: config.cartaTimeoutMs,
        now: clock.now(),
        ...(deps.metrics ? { observe: deps.metrics.observeCarta } : {}),
      })
    } catch (err) {
      // Only our own classified message: never the token, never a raw response body.
      error =
        err instanceof CartaOAuthError
          ? `${err.kind}: ${err.message}`
          : `could not send: ${(err as Error)?.name ?? 'error'}`
    }
  }

  if (error !== null) deps.metrics?.revocationFailures.inc({ app: row.app_key })
  const now = clock.now()
  if (error === null) {
    await db.transaction().execute(async (trx) => {
      // The ciphertext is no longer needed once Carta confirmed: do not keep it around.
      await trx
        .updateTable('token_revocations')
        .set({
          status: 'done',
          done_at: now,
          lock_until: null,
          last_error: null,
          token: '',
          attempts: row.attempts + 1,
        })
        .where('id', '=', id)
        .execute()
      await recordAudit(trx, now, {
        type: 'token.revoked',
        actor: 'system',
        userId: grant?.user_id ?? null,
        grantId: row.grant_id,
        appId: row.app_id,
        details: { revocationId: id, tokenType: row.token_type_hint, attempts: row.attempts + 1 },
      })
    })
    deps.log?.info({ revocationId: id, grantId: row.grant_id }, 'token revoked at Carta')
    return 'sent'
  }

  const attempts = row.attempts + 1
  const giveUp = attempts >= MAX_ATTEMPTS
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('token_revocations')
      .set({
        attempts,
        last_error: error.slice(0, 300),
        lock_until: null,
        next_attempt_at: now + backoffMs(attempts),
        ...(giveUp ? { status: 'failed' as const } : {}),
      })
      .where('id', '=', id)
      .execute()
    if (giveUp) {
      await recordAudit(trx, now, {
        type: 'token.revocation_failed',
        actor: 'system',
        userId: grant?.user_id ?? null,
        grantId: row.grant_id,
        appId: row.app_id,
        details: { revocationId: id, tokenType: row.token_type_hint, attempts, lastError: error.slice(0, 300) },
      })
    }
  })
  deps.log?.warn(
    { revocationId: id, grantId: row.grant_id, attempts, giveUp, reason: error },
    'token revocation failed',
  )
  return 'failed'
}

export interface RevocationCounts {
  pending: number
  failed: number
}

/** Pending and failed revocations per app id (for /admin/apps). */
export async function revocationCountsByApp(db: Db): Promise<Map<number, RevocationCounts>> {
  const rows = await db
    .selectFrom('token_revocations')
    .select((eb) => ['app_id', 'status', eb.fn.countAll().as('n')])
    .where('status', 'in', ['pending', 'failed'])
    .groupBy(['app_id', 'status'])
    .execute()
  const out = new Map<number, RevocationCounts>()
  for (const row of rows) {
    const entry = out.get(row.app_id) ?? { pending: 0, failed: 0 }
    entry[row.status as 'pending' | 'failed'] = Number(row.n)
    out.set(row.app_id, entry)
  }
  return out
}
