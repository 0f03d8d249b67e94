// The connect flow (DESIGN §3.1): beginAuthorization sends the browser to Carta with a fresh
// state and PKCE challenge; completeAuthorization checks what comes back, talks to Carta, and
// records the grant in one transaction. Every refusal is a DomainError (clear page + warn log).
import type { FastifyReply, FastifyRequest } from 'fastify'
import * as client from 'openid-client'
import { recordAudit } from '../audit/events.js'
import type { CartaAppConfig } from '../config.js'
import { recordGrant } from '../grants/record.js'
import { findEndUser } from '../users/end-users.js'
import { type AppRow, appConfigFor, appScopes, findAppById } from '../apps/apps.js'
import { CartaApiError, type CartaUser, fetchUser } from './api.js'
import { CartaOAuthError, type TokenSet, buildAuthorizationUrl, exchangeCode, safeCode } from './oauth-client.js'
import { consumeState, createState } from './states.js'
import { formatScopes, missingScopes, parseScopes } from '../scopes.js'
import { DomainError, isDomainError, type Retry } from '../errors.js'
import { localRedirect } from '../http/redirect.js'

export const CALLBACK_PATH = '/carta/callback'

export interface BeginOptions {
  app: AppRow
  scopes: string[]
  /** Reauthorization-link flows: the link consumed when the grant is recorded. */
  linkId?: number
  /** Reauthorization-link flows: the user the link was issued for (identity is checked). */
  expectedUserId?: number
  /** Local path to land on after success (default `/`). */
  returnTo?: string
}

/** Starts the authorization-code flow: state + PKCE S256 stored server-side, 303 to Carta. */
export async function beginAuthorization(
  request: FastifyRequest,
  reply: FastifyReply,
  options: BeginOptions,
): Promise<FastifyReply> {
  const { config, db, clock } = request.server.deps
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
  const now = clock.now()
  // Saving the session gives it a stable id (saveUninitialized is off) to bind the state to.
  request.session.connectStartedAt = now
  const codeVerifier = client.randomPKCECodeVerifier()
  const redirectUri = `${config.publicUrl}${CALLBACK_PATH}`
  const state = await createState(
    db,
    {
      sessionId: request.session.sessionId,
      appId: app.id,
      codeVerifier,
      requestedScopes: formatScopes(scopes),
      redirectUri,
      linkId: options.linkId ?? null,
      expectedUserId: options.expectedUserId ?? null,
      returnTo: options.returnTo === undefined ? null : localRedirect(options.returnTo, { fallback: '/' }),
    },
    now,
  )
  const url = buildAuthorizationUrl(
    appConfig,
    { redirectUri, scopes, state, codeChallenge: await client.calculatePKCECodeChallenge(codeVerifier) },
    { timeoutMs: config.cartaTimeoutMs },
  )
  request.log.info(
    { app: app.key, scopes: formatScopes(scopes), linkId: options.linkId ?? null },
    'sending browser to Carta to authorize',
  )
  return reply.redirect(url.href, 303)
}

/** The declared (secret-bearing) config of an active app, or a 404/409 page. */
export function usableApp(apps: CartaAppConfig[], app: AppRow): CartaAppConfig {
  if (app.status !== 'active') {
    throw new DomainError('app.retired', `${app.name} is retired.`, { name: app.name })
  }
  const appConfig = appConfigFor(apps, app)
  if (!appConfig)
    throw new DomainError('app.not_configured', `${app.name} is not in the apps file.`, { name: app.name })
  return appConfig
}

export interface CallbackQuery {
  state?: string
  code?: string
  error?: string
}

/** Handles `/carta/callback`. Order matters: state first, so nothing else is trusted without it. */
export async function completeAuthorization(
  request: FastifyRequest,
  reply: FastifyReply,
  query: CallbackQuery,
): Promise<FastifyReply> {
  const { config, db, clock, cipher } = request.server.deps
  const state = typeof query.state === 'string' ? query.state : ''
  if (!state) throw new DomainError('connect.no_state', 'The callback carries no state.', { retry: 'start' })

  const consumed = await consumeState(db, state, request.session.sessionId, clock.now())
  if (!consumed.ok) {
    request.log.warn({ reason: consumed.reason }, 'OAuth state rejected')
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

  if (typeof query.error === 'string') {
    const code = safeCode(query.error)
    if (code === 'access_denied') {
      throw new DomainError('connect.declined', 'The user declined at Carta.', retry)
    }
    throw new DomainError('connect.carta_error', `Carta answered ${code}.`, { ...retry, error: code })
  }
  if (typeof query.code !== 'string' || !query.code) {
    throw new DomainError('connect.no_code', 'The callback carries no code.', { retry: 'start' })
  }

  const requested = parseScopes(stateRow.requested_scopes)
  let tokens: TokenSet
  try {
    tokens = await exchangeCode(
      appConfig,
      {
        currentUrl: new URL(request.url, config.publicUrl),
        state,
        codeVerifier: stateRow.code_verifier,
        redirectUri: stateRow.redirect_uri,
      },
      { timeoutMs: config.cartaTimeoutMs, now: clock.now() },
    )
  } catch (err) {
    throw exchangeFailure(err, retry)
  }

  // RFC 6749 §5.1: `scope` is sent when it differs from the request; absent → as requested.
  const reported = tokens.scope !== undefined
  const granted = reported ? parseScopes(tokens.scope) : requested
  const unasked = missingScopes(granted, requested)
  if (unasked.length) {
    request.log.warn({ app: app.key, unasked }, 'Carta granted scopes that were not requested')
    throw new DomainError('connect.unrequested_scope', `Carta granted unrequested ${unasked.join(' ')}.`, {
      ...retry,
      scopes: unasked,
    })
  }

  let user: CartaUser | null = null
  if (granted.includes('read_user_info')) {
    try {
      user = await fetchUser(appConfig, tokens.accessToken, { timeoutMs: config.cartaTimeoutMs })
    } catch (err) {
      const e = err instanceof CartaApiError ? err : new CartaApiError('unavailable', 'user lookup failed')
      request.log.warn({ app: app.key, kind: e.kind, reason: e.message }, 'Carta user lookup failed')
      throw new DomainError('connect.user_unknown', `Carta user lookup failed: ${e.message}`, {
        ...retry,
        timeout: Boolean(e.details.timeout),
      })
    }
  }

  const now = clock.now()
  const identity = user ? { cartaUserId: user.id, email: user.email, name: user.name } : null
  if (stateRow.expected_user_id) {
    const expected = await findEndUser(db, stateRow.expected_user_id)
    if (expected?.carta_user_id && expected.carta_user_id !== identity?.cartaUserId) {
      await identityMismatch(
        request,
        stateRow.expected_user_id,
        stateRow.link_id,
        app.id,
        identity ? 'different Carta user' : 'Carta identity not shared',
        now,
      )
    }
  }

  let recorded: Awaited<ReturnType<typeof recordGrant>>
  try {
    recorded = await recordGrant(db, cipher, {
      appId: app.id,
      appKey: app.key,
      requestedScopes: requested,
      grantedScopes: granted,
      scopesSource: reported ? 'reported' : 'assumed',
      tokens,
      identity,
      localKey: request.session.localKey ?? null,
      linkId: stateRow.link_id,
      expectedUserId: stateRow.expected_user_id,
      now,
    })
  } catch (err) {
    if (isDomainError(err, 'connect.identity_mismatch') && stateRow.expected_user_id) {
      return identityMismatch(request, stateRow.expected_user_id, stateRow.link_id, app.id, err.details.reason, now)
    }
    throw err
  }
  // A new session id now that this browser is bound to a user (session fixation, RFC 9700 §4.1 spirit).
  await request.session.regenerate(['localKey', 'operatorId', 'operatorName'])
  if (recorded.createdLocalKey) request.session.localKey = recorded.createdLocalKey
  request.session.endUserId = recorded.userId
  // The superseded grant's tokens were queued for revocation: send them now, not at the next tick.
  if (recorded.supersededGrantId) request.server.jobs.kick('revocations')
  request.log.info(
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
  return reply.redirect(localRedirect(stateRow.return_to ?? '/', { fallback: '/' }), 303)
}

/** Link used by someone signed in to Carta as another person: record the attempt, nothing else. */
async function identityMismatch(
  request: FastifyRequest,
  expectedUserId: number,
  linkId: number | null,
  appId: number,
  reason: string,
  now: number,
): Promise<never> {
  const { db } = request.server.deps
  await db.transaction().execute((trx) =>
    recordAudit(trx, now, {
      type: 'link.identity_mismatch',
      actor: 'anonymous',
      userId: expectedUserId,
      appId,
      details: { linkId, reason },
    }),
  )
  request.log.warn(
    { expectedUserId, linkId, reason },
    'reauthorization refused: Carta identity does not match the link',
  )
  throw new DomainError('connect.identity_mismatch', `Carta identity does not match the link: ${reason}`, { reason })
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
