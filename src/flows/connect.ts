// The connect flow (src/README.md, "Flows"): startConnect sends the browser to Carta with a fresh
// state and PKCE challenge; completeConnect checks what comes back, talks to Carta, and records the
// connection in ONE transaction that this module owns: the end user (users), the grant (grants,
// through changeGrant) and, for a reauthorization link, the link (links). Every refusal is a
// DomainError (the HTTP layer shows its page) and a warn log line; nothing is half written.
// The HTTP layer binds the flow to the browser session and does the redirects.
import type { Transaction } from 'kysely'
import * as client from 'openid-client'
import { bindExternalUser } from '../api/connect-sessions.js'
import { type AppRow, appConfigFor, appScopes, findAppById } from '../apps/apps.js'
import { recordAudit } from '../audit/events.js'
import { CartaApiError, type CartaUser, fetchUser } from '../carta/api.js'
import { CartaOAuthError, type TokenSet, buildAuthorizationUrl, exchangeCode, safeCode } from '../carta/oauth-client.js'
import type { CartaAppConfig } from '../config.js'
import { isRetryableConflict } from '../db/dialect.js'
import type { Db } from '../db/index.js'
import type { Database } from '../db/schema.js'
import type { AppDeps } from '../deps.js'
import { DomainError, type Retry, isDomainError } from '../errors.js'
import { changeGrant } from '../grants/change.js'
import { enqueueUnrecordedTokens } from '../grants/revocation.js'
import { consumeLink, markLinkOutcome } from '../links/links.js'
import type { Logger } from '../log.js'
import { formatScopes, missingScopes, parseScopes } from '../scopes.js'
import {
  type CartaIdentity,
  adoptIdentity,
  findEndUser,
  findEndUserByCartaId,
  resolveEndUser,
} from '../users/end-users.js'
import { consumeState, createState } from './states.js'

/** Carta redirects back here; every app registers `$PUBLIC_URL` + this path as its redirect URI. */
export const CALLBACK_PATH = '/carta/callback'

/** The app's Carta call observer (src/metrics.ts), when it has one. */
const observeCarta = (deps: Deps) => (deps.metrics ? { observe: deps.metrics.observeCarta } : {})

type Deps = Pick<AppDeps, 'config' | 'db' | 'clock' | 'cipher'> & Partial<Pick<AppDeps, 'metrics'>>

export interface StartOptions {
  app: AppRow
  scopes: string[]
  /** The browser session the state is bound to (the callback must come back in it). */
  sessionId: string
  /** Reauthorization-link flows: the link consumed when the grant is recorded. */
  linkId?: number
  /** Reauthorization-link flows: the user the link was issued for (identity is checked). */
  expectedUserId?: number
  /** Local path to land on after success (checked by the HTTP layer; default `/`). */
  returnTo?: string
  /** API connect sessions: the identity is tied to the session's external user id (api/connect-sessions.ts). */
  connectSessionId?: number
}

/** Starts the authorization-code flow: state + PKCE S256 stored server-side; the URL to send the browser to. */
export async function startConnect(deps: Deps, options: StartOptions, log: Logger): Promise<URL> {
  const { config, db, clock } = deps
  const { app } = options
  const appConfig = usableApp(config.apps, app)
  const scopes = parseScopes(options.scopes.join(' '))
  const outside = missingScopes(scopes, appScopes(app))
  if (scopes.length === 0 || outside.length) {
    throw new DomainError('connect.bad_scopes', `App ${app.key} cannot request ${outside.join(' ') || 'nothing'}.`, {
      app: app.name,
      outside,
    })
  }
  const codeVerifier = client.randomPKCECodeVerifier()
  const redirectUri = `${config.publicUrl}${CALLBACK_PATH}`
  const state = await createState(
    db,
    {
      sessionId: options.sessionId,
      appId: app.id,
      codeVerifier,
      requestedScopes: formatScopes(scopes),
      redirectUri,
      linkId: options.linkId ?? null,
      expectedUserId: options.expectedUserId ?? null,
      returnTo: options.returnTo ?? null,
      connectSessionId: options.connectSessionId ?? null,
    },
    clock.now(),
  )
  const url = buildAuthorizationUrl(
    appConfig,
    { redirectUri, scopes, state, codeChallenge: await client.calculatePKCECodeChallenge(codeVerifier) },
    { timeoutMs: config.cartaTimeoutMs },
  )
  log.info(
    { app: app.key, scopes: formatScopes(scopes), linkId: options.linkId ?? null },
    'sending browser to Carta to authorize',
  )
  return url
}

/** The declared (secret-bearing) config of an active app; retired or undeclared apps are refused. */
export function usableApp(apps: CartaAppConfig[], app: AppRow): CartaAppConfig {
  if (app.status !== 'active') throw new DomainError('app.retired', `${app.name} is retired.`, { name: app.name })
  const appConfig = appConfigFor(apps, app)
  if (!appConfig)
    throw new DomainError('app.not_configured', `${app.name} is not in the apps file.`, { name: app.name })
  return appConfig
}

/** Carta's answer on the callback (RFC 6749 §4.1.2). */
export interface CallbackQuery {
  state?: string
  code?: string
  error?: string
}

export interface CallbackInput {
  query: CallbackQuery
  /** The URL Carta sent the browser to (openid-client checks it). */
  currentUrl: URL
  sessionId: string
  /** The session's local key, for users whose Carta identity is unknown. */
  localKey: string | null
  /** Called when a refusal queued Carta's tokens for revocation (the caller kicks the job). */
  onTokensQueued?: () => void
}

export interface Connected {
  userId: number
  grantId: number
  supersededGrantId: number | null
  /** Set when a new local user was created: the caller stores it in the session. */
  createdLocalKey: string | null
  /** Where the flow wanted to land (unchecked: the HTTP layer checks it before redirecting). */
  returnTo: string | null
  /** A connect session's absolute returnTo (the HTTP layer checks it against the allowed origins). */
  externalReturnTo?: string
}

/** Completes the flow. Order matters: the state first, so nothing else is trusted without it. */
export async function completeConnect(deps: Deps, input: CallbackInput, log: Logger): Promise<Connected> {
  const { config, db, clock } = deps
  const { query } = input
  const state = query.state ?? ''
  if (!state) throw new DomainError('connect.no_state', 'The callback carries no state.', { retry: 'start' })

  const consumed = await consumeState(db, state, input.sessionId, clock.now())
  if (!consumed.ok) {
    log.warn({ reason: consumed.reason }, 'OAuth state rejected')
    throw new DomainError('connect.state_rejected', `OAuth state rejected: ${consumed.reason}`, {
      retry: 'start',
      reason: consumed.reason,
    })
  }
  const stateRow = consumed.row
  const app = await findAppById(db, stateRow.app_id)
  if (!app) throw new DomainError('app.not_configured', `App ${stateRow.app_id} is gone.`, { name: null })
  const appConfig = usableApp(config.apps, app)
  const retry: Retry = stateRow.link_id ? { retry: 'none' } : { retry: 'app', appKey: app.key }

  if (query.error !== undefined) {
    const code = safeCode(query.error)
    if (code === 'access_denied') {
      if (stateRow.link_id) await markLinkOutcome(db, stateRow.link_id, 'declined', clock.now())
      throw new DomainError('connect.declined', 'The user declined at Carta.', retry)
    }
    throw new DomainError('connect.carta_error', `Carta answered ${code}.`, { ...retry, error: code })
  }
  if (!query.code) throw new DomainError('connect.no_code', 'The callback carries no code.', { retry: 'start' })

  const requested = parseScopes(stateRow.requested_scopes)
  let tokens: TokenSet
  try {
    tokens = await exchangeCode(
      appConfig,
      {
        currentUrl: input.currentUrl,
        state,
        codeVerifier: stateRow.code_verifier,
        redirectUri: stateRow.redirect_uri,
      },
      { timeoutMs: config.cartaTimeoutMs, now: clock.now(), ...observeCarta(deps) },
    )
  } catch (err) {
    throw exchangeFailure(err, retry)
  }

  // From here on Carta has issued tokens: unless they end up recorded as a grant, they are queued
  // for revocation before the refusal is answered (Carta's refresh tokens do not expire by time).
  let queued = false
  const queueUnrecorded = async (trx: Db) => {
    await enqueueUnrecordedTokens(trx, deps.cipher, app.id, tokens, clock.now())
    queued = true
  }
  // RFC 6749 §5.1: `scope` is sent when it differs from the request; absent → as requested.
  const reported = tokens.scope !== undefined
  const granted = reported ? parseScopes(tokens.scope) : requested
  let recorded: Omit<Connected, 'returnTo'>
  try {
    const unasked = missingScopes(granted, requested)
    if (unasked.length) {
      log.warn({ app: app.key, unasked }, 'Carta granted scopes that were not requested')
      throw new DomainError('connect.unrequested_scope', `Carta granted unrequested ${unasked.join(' ')}.`, {
        ...retry,
        scopes: unasked,
      })
    }

    let user: CartaUser | null = null
    if (granted.includes('read_user_info')) {
      try {
        user = await fetchUser(appConfig, tokens.accessToken, {
          timeoutMs: config.cartaTimeoutMs,
          ...observeCarta(deps),
        })
      } catch (err) {
        const e = err instanceof CartaApiError ? err : new CartaApiError('unavailable', 'user lookup failed')
        log.warn({ app: app.key, kind: e.kind, reason: e.message }, 'Carta user lookup failed')
        throw new DomainError('connect.user_unknown', `Carta user lookup failed: ${e.message}`, {
          ...retry,
          timeout: Boolean(e.details.timeout),
        })
      }
    }

    const now = clock.now()
    const identity = user ? { cartaUserId: user.id, email: user.email, name: user.name } : null
    const mismatch = (reason: string) =>
      identityMismatch(
        deps,
        log,
        { expectedUserId: stateRow.expected_user_id!, linkId: stateRow.link_id, appId: app.id, reason },
        now,
        queueUnrecorded,
      )
    if (stateRow.expected_user_id) {
      const expected = await findEndUser(db, stateRow.expected_user_id)
      if (expected?.carta_user_id && expected.carta_user_id !== identity?.cartaUserId)
        return mismatch(identity ? 'different Carta user' : 'Carta identity not shared')
    }

    try {
      recorded = await retryConflicts(log, () =>
        db.transaction().execute(async (trx) => {
          const { userId, createdLocalKey } = await targetUser(trx, {
            identity,
            localKey: input.localKey,
            expectedUserId: stateRow.expected_user_id,
            now,
          })
          const result = await changeGrant(
            trx,
            deps.cipher,
            {
              kind: 'granted',
              userId,
              app,
              requested,
              granted,
              source: reported ? 'reported' : 'assumed',
              tokens,
              actor: `user:${userId}`,
              details: stateRow.link_id ? { linkId: stateRow.link_id } : {},
            },
            now,
          )
          // A link is single-use: of two callbacks racing for it, the loser rolls back everything.
          if (stateRow.link_id && !(await consumeLink(trx, stateRow.link_id, result.grantId, now)))
            throw new DomainError('connect.link_unavailable', 'The link was used or expired meanwhile.', {})
          // An API connect session: the integrator's id joins the user in the same transaction.
          const bound = stateRow.connect_session_id
            ? await bindExternalUser(trx, stateRow.connect_session_id, userId)
            : null
          return {
            userId,
            grantId: result.grantId,
            supersededGrantId: result.supersededGrantId,
            createdLocalKey,
            ...(bound ? { externalReturnTo: bound.returnTo } : {}),
          }
        }),
      )
    } catch (err) {
      if (isDomainError(err, 'connect.identity_mismatch') && stateRow.expected_user_id)
        return mismatch(err.details.reason)
      throw err
    }
  } catch (err) {
    if (!queued) {
      try {
        await queueUnrecorded(db)
      } catch (queueErr) {
        log.error({ err: queueErr, app: app.key }, 'could not queue the revocation of unrecorded Carta tokens')
      }
    }
    if (queued) {
      log.warn({ app: app.key }, 'Carta tokens not recorded: queued for revocation')
      input.onTokensQueued?.()
    }
    throw err
  }
  log.info(
    {
      app: app.key,
      userId: recorded.userId,
      grantId: recorded.grantId,
      granted: formatScopes(granted),
      source: reported ? 'reported' : 'assumed',
      superseded: recorded.supersededGrantId,
    },
    'grant recorded',
  )
  return { ...recorded, returnTo: stateRow.return_to }
}

type Trx = Transaction<Database>

/**
 * Runs a transaction again when it lost a race that leaves nothing behind (it rolled back): a
 * deadlock, a serialization failure, a concurrent insert of the same unique key. Everything it
 * reads is read again, so the second run sees the winner's rows.
 */
async function retryConflicts<T>(log: Logger, run: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (err) {
      if (attempt >= attempts || !isRetryableConflict(err)) throw err
      log.warn({ attempt, code: (err as { code?: string }).code }, 'connect transaction lost a race; running it again')
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * attempt))
    }
  }
}

/**
 * The end user the new grant belongs to. A link's flow: the link's user, provided Carta says it is
 * the same person (an unknown identity is adopted). Otherwise: by Carta identity, or the
 * session's local user (users/end-users.ts).
 */
async function targetUser(
  trx: Trx,
  input: { identity: CartaIdentity | null; localKey: string | null; expectedUserId: number | null; now: number },
): Promise<{ userId: number; createdLocalKey: string | null }> {
  if (input.expectedUserId) {
    const user = await findEndUser(trx, input.expectedUserId)
    if (!user) throw identityMismatchError('the link’s user no longer exists')
    if (user.carta_user_id !== null) {
      if (!input.identity) throw identityMismatchError('Carta identity not shared (read_user_info not granted)')
      if (input.identity.cartaUserId !== user.carta_user_id) throw identityMismatchError('different Carta user')
      await trx
        .updateTable('end_users')
        .set({
          email: input.identity.email ?? user.email,
          name: input.identity.name ?? user.name,
          updated_at: input.now,
        })
        .where('id', '=', user.id)
        .execute()
    } else if (input.identity) {
      const other = await findEndUserByCartaId(trx, input.identity.cartaUserId)
      if (other && other.id !== user.id) throw identityMismatchError('Carta user already belongs to another end user')
      await adoptIdentity(trx, user.id, input.identity, input.now)
    }
    return { userId: user.id, createdLocalKey: null }
  }
  const { user, createdLocalKey } = await resolveEndUser(trx, {
    identity: input.identity,
    localKey: input.localKey,
    now: input.now,
  })
  return { userId: user.id, createdLocalKey }
}

function identityMismatchError(reason: string): DomainError<'connect.identity_mismatch'> {
  return new DomainError('connect.identity_mismatch', `Carta identity does not match the link: ${reason}`, { reason })
}

/** A link used by someone signed in to Carta as another person: record the attempt, nothing else. */
async function identityMismatch(
  deps: Deps,
  log: Logger,
  attempt: { expectedUserId: number; linkId: number | null; appId: number; reason: string },
  now: number,
  queueUnrecorded: (trx: Db) => Promise<void>,
): Promise<never> {
  // The attempt and the revocation of the tokens it obtained: one transaction.
  await deps.db.transaction().execute(async (trx) => {
    if (attempt.linkId) await markLinkOutcome(trx, attempt.linkId, 'identity_mismatch', now)
    await recordAudit(trx, now, {
      type: 'link.identity_mismatch',
      actor: 'anonymous',
      userId: attempt.expectedUserId,
      appId: attempt.appId,
      details: { linkId: attempt.linkId, reason: attempt.reason },
    })
    await queueUnrecorded(trx)
  })
  log.warn(
    { expectedUserId: attempt.expectedUserId, linkId: attempt.linkId, reason: attempt.reason },
    'reauthorization refused: Carta identity does not match the link',
  )
  throw identityMismatchError(attempt.reason)
}

function exchangeFailure(err: unknown, retry: Retry): DomainError {
  const e = err instanceof CartaOAuthError ? err : new CartaOAuthError('unavailable', 'code exchange failed')
  switch (e.kind) {
    case 'invalid_grant':
      return new DomainError('connect.code_refused', 'Carta refused the code (invalid_grant).', retry)
    case 'rejected':
      return new DomainError(
        'connect.token_refused',
        `Carta refused the token request: ${e.details.error ?? 'unknown'}`,
        {
          ...retry,
          error: e.details.error ?? 'unknown',
        },
      )
    case 'unavailable':
      return e.details.timeout
        ? new DomainError('connect.carta_timeout', 'Carta did not answer in time.', retry)
        : new DomainError('connect.carta_unavailable', `Carta is unavailable: ${e.message}`, {
            ...retry,
            detail: e.message,
          })
    case 'malformed':
      return new DomainError('connect.carta_malformed', 'The token answer was not a valid OAuth response.', retry)
  }
}
