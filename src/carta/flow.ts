// The connect flow (DESIGN §3.1): beginAuthorization sends the browser to Carta with a fresh
// state and PKCE challenge; completeAuthorization checks what comes back, talks to Carta, and
// records the grant in one transaction. Every refusal is a PageError (clear page + warn log).
import type { FastifyReply, FastifyRequest } from 'fastify'
import * as client from 'openid-client'
import { recordAudit } from '../audit/events.js'
import type { CartaAppConfig } from '../config.js'
import { IdentityMismatchError, LinkUnavailableError, recordGrant } from '../grants/record.js'
import { findEndUser } from '../users/end-users.js'
import { type AppRow, appConfigFor, appScopes, findAppById } from './apps.js'
import { CartaApiError, type CartaUser, fetchUser } from './api.js'
import { CartaOAuthError, type TokenSet, buildAuthorizationUrl, exchangeCode, safeCode } from './oauth-client.js'
import { consumeState, createState } from './states.js'
import { formatScopes, missingScopes, parseScopes } from '../scopes.js'
import { PageError } from '../web/render.js'

declare module 'fastify' {
  interface Session {
    /** Set when a connect flow starts so the session is saved and its id can bind the state. */
    connectStartedAt?: number
  }
}

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
    throw new PageError(
      409,
      'This connection cannot start',
      `The app "${app.name}" cannot request ${outside.length ? outside.join(', ') : 'an empty set of permissions'}.`,
    )
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
      returnTo: safeReturnTo(options.returnTo),
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
    throw new PageError(409, 'This Carta app is retired', `"${app.name}" no longer accepts new connections.`, {
      retryHref: '/carta/connect',
      retryLabel: 'Connect with the current app',
    })
  }
  const appConfig = appConfigFor(apps, app)
  if (!appConfig)
    throw new PageError(
      409,
      'This Carta app is not configured',
      `"${app.name}" is no longer declared in the apps file.`,
    )
  return appConfig
}

function safeReturnTo(value: string | undefined): string | null {
  // Local paths only: no scheme, no protocol-relative "//host", no backslash tricks.
  return value?.startsWith('/') && !value.startsWith('//') && !value.includes('\\') ? value : null
}

const START_AGAIN = { retryHref: '/carta/connect', retryLabel: 'Start again' }

export interface CallbackQuery {
  state?: string
  code?: string
  error?: string
}

/** Handles `/carta/callback`. Order matters: state first, so nothing else is trusted without it. */
export async function completeAuthorization(
  request: FastifyRequest<{ Querystring: CallbackQuery }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { config, db, clock, cipher } = request.server.deps
  const query = request.query
  const state = typeof query.state === 'string' ? query.state : ''
  if (!state)
    throw new PageError(
      400,
      'This sign-in cannot be completed',
      'The answer from Carta carries no state. Please start again.',
      START_AGAIN,
    )

  const consumed = await consumeState(db, state, request.session.sessionId, clock.now())
  if (!consumed.ok) {
    request.log.warn({ reason: consumed.reason }, 'OAuth state rejected')
    throw new PageError(
      400,
      'This sign-in link is no longer valid',
      'It was already used, has expired (after 10 minutes), or was started in another browser. Please start again.',
      START_AGAIN,
    )
  }
  const stateRow = consumed.row
  const app = await findAppById(db, stateRow.app_id)
  if (!app) throw new PageError(409, 'This Carta app is not configured', 'The app this sign-in started with is gone.')
  const appConfig = usableApp(config.apps, app)
  const retry: Record<string, string> = stateRow.link_id
    ? {}
    : { retryHref: `/carta/connect?app=${encodeURIComponent(app.key)}`, retryLabel: 'Connect again' }

  if (typeof query.error === 'string') {
    const code = safeCode(query.error)
    if (code === 'access_denied') {
      throw new PageError(
        403,
        'You declined the connection',
        'You declined to give Scope Ledger access to your Carta account, so nothing was connected. You can try again whenever you like.',
        retry,
      )
    }
    throw new PageError(
      502,
      'Carta could not authorize the connection',
      `Carta answered with the error "${code}". Nothing was connected.`,
      retry,
    )
  }
  if (typeof query.code !== 'string' || !query.code) {
    throw new PageError(
      400,
      'This sign-in cannot be completed',
      'The answer from Carta carries no authorization code.',
      START_AGAIN,
    )
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
    throw new PageError(
      502,
      'Carta granted a permission we did not ask for',
      `Carta's answer included ${unasked.join(', ')}, which Scope Ledger did not request. Nothing was recorded.`,
      retry,
    )
  }

  let user: CartaUser | null = null
  if (granted.includes('read_user_info')) {
    try {
      user = await fetchUser(appConfig, tokens.accessToken, { timeoutMs: config.cartaTimeoutMs })
    } catch (err) {
      const e = err instanceof CartaApiError ? err : new CartaApiError('unavailable', 'user lookup failed')
      request.log.warn({ app: app.key, kind: e.kind, reason: e.message }, 'Carta user lookup failed')
      throw new PageError(
        e.details.timeout ? 504 : 502,
        'Carta did not tell us who you are',
        'Reading your Carta profile failed, so nothing was recorded. Please try again in a moment.',
        retry,
      )
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
    if (err instanceof LinkUnavailableError) {
      throw new PageError(
        410,
        'This link has already been used or has expired',
        'Ask the team that sent it for a new one. Nothing was changed.',
      )
    }
    if (err instanceof IdentityMismatchError && stateRow.expected_user_id) {
      return identityMismatch(request, stateRow.expected_user_id, stateRow.link_id, app.id, err.reason, now)
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
  return reply.redirect(stateRow.return_to ?? '/', 303)
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
  throw new PageError(
    403,
    'You are signed in to Carta as a different person',
    'This link was made for someone else’s Carta account, so nothing was changed. Sign out of Carta, then open the link again and sign in as the person it was sent to.',
  )
}

function exchangeFailure(err: unknown, retry: Record<string, string>): PageError {
  const e = err instanceof CartaOAuthError ? err : new CartaOAuthError('unavailable', 'code exchange failed')
  switch (e.kind) {
    case 'invalid_grant':
      return new PageError(
        400,
        'Carta did not accept this sign-in',
        'The authorization code was refused by Carta (invalid_grant): it may have expired or been used already. Please connect again.',
        retry,
      )
    case 'rejected':
      return new PageError(
        502,
        'Carta refused the connection',
        `Carta answered the token request with the error "${e.details.error ?? 'unknown'}". Nothing was recorded.`,
        retry,
      )
    case 'unavailable':
      return e.details.timeout
        ? new PageError(
            504,
            'Carta did not answer in time',
            'Carta took too long to answer, so nothing was recorded. Please try again in a moment.',
            retry,
          )
        : new PageError(
            502,
            'Carta is unavailable',
            `Carta could not complete the sign-in (${e.message}). Nothing was recorded; please try again in a moment.`,
            retry,
          )
    case 'malformed':
      return new PageError(
        502,
        'Carta sent an answer we could not read',
        'The token answer from Carta was not a valid OAuth response, so nothing was recorded.',
        retry,
      )
  }
}
