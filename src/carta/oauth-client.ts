// The only code that speaks OAuth 2.0 to Carta, through openid-client v6 (oauth4webapi).
// Carta is a plain OAuth 2.0 server, not OpenID Connect: no discovery document, no id_token.
// Every call has a timeout; every failure becomes one CartaOAuthError with a `kind`.
import * as client from 'openid-client'
import { type CartaAppConfig, isLoopbackUrl } from '../config.js'
import { type CartaObserver, secondsSince } from '../metrics.js'
import { formatScopes } from '../scopes.js'

export const DEFAULT_TIMEOUT_MS = 10_000

/** What callers pass with each call: the configured timeout and the clock's "now". */
export interface OAuthCallOptions {
  /** config.cartaTimeoutMs */
  timeoutMs?: number
  /** Epoch ms used to turn expires_in into expiresAt (the app's clock). */
  now?: number
  /** Sees each call's endpoint, status and duration (deps.metrics.observeCarta). */
  observe?: CartaObserver
}

/** Runs one call to Carta's OAuth `endpoint`, reporting its status (or timeout) to `observe`. */
async function observed<T>(endpoint: string, options: OAuthCallOptions, call: () => Promise<T>): Promise<T> {
  const started = performance.now()
  try {
    const result = await call()
    options.observe?.({ endpoint, status: 200, seconds: secondsSince(started) })
    return result
  } catch (err) {
    const e = classify(err)
    const status = e.details.status ?? (e.details.timeout ? 'timeout' : 'unreachable')
    options.observe?.({ endpoint, status, seconds: secondsSince(started) })
    throw e
  }
}

/** A token endpoint answer, normalized. Never log it. */
export interface TokenSet {
  accessToken: string
  refreshToken: string | null
  /** Epoch ms, or null when the server did not say (expires_in is only RECOMMENDED, RFC 6749 §5.1). */
  expiresAt: number | null
  /** Always "Bearer" (compared case-insensitively, RFC 6749 §7.1). */
  tokenType: string
  /** The `scope` member as sent; undefined when absent (then the requested set was granted, §5.1). */
  scope: string | undefined
}

export type OAuthErrorKind = 'invalid_grant' | 'rejected' | 'unavailable' | 'malformed'

export class CartaOAuthError extends Error {
  constructor(
    readonly kind: OAuthErrorKind,
    message: string,
    readonly details: {
      /** OAuth `error` code from the server (RFC 6749 §5.2), when it sent one. */
      error?: string
      status?: number
      /** True when the call was cut off by our timeout. */
      timeout?: boolean
    } = {},
  ) {
    super(message)
    this.name = 'CartaOAuthError'
  }
}

// One Configuration per app, rebuilt when anything it depends on changes (tests start many apps).
const cache = new Map<string, { fingerprint: string; configuration: client.Configuration }>()

function configurationFor(app: CartaAppConfig, timeoutMs: number): client.Configuration {
  const fingerprint = [app.clientId, app.clientSecret, app.authBaseUrl, timeoutMs].join('\n')
  const hit = cache.get(app.key)
  if (hit?.fingerprint === fingerprint) return hit.configuration
  const auth = app.authBaseUrl
  const configuration = new client.Configuration(
    {
      issuer: auth,
      authorization_endpoint: `${auth}/o/authorize/`,
      token_endpoint: `${auth}/o/access_token/`,
      revocation_endpoint: `${auth}/o/revoke_token/`,
    },
    app.clientId,
    { client_secret: app.clientSecret },
    // Carta authenticates clients with HTTP Basic (RFC 6749 §2.3.1).
    client.ClientSecretBasic(app.clientSecret),
  )
  // Plain HTTP only for loopback (the sandbox, test servers); real Carta is always HTTPS.
  if (isLoopbackUrl(auth)) client.allowInsecureRequests(configuration)
  configuration.timeout = timeoutMs / 1000 // openid-client counts seconds
  cache.set(app.key, { fingerprint, configuration })
  return configuration
}

/** Authorization request URL (RFC 6749 §4.1.1) with PKCE S256 (RFC 7636). */
export function buildAuthorizationUrl(
  app: CartaAppConfig,
  params: { redirectUri: string; scopes: string[]; state: string; codeChallenge: string },
  options: OAuthCallOptions = {},
): URL {
  return client.buildAuthorizationUrl(configurationFor(app, options.timeoutMs ?? DEFAULT_TIMEOUT_MS), {
    response_type: 'code',
    redirect_uri: params.redirectUri,
    scope: formatScopes(params.scopes), // space-delimited (RFC 6749 §3.3)
    state: params.state,
    code_challenge: params.codeChallenge,
    code_challenge_method: 'S256',
  })
}

/** Exchanges the authorization code from the callback URL (RFC 6749 §4.1.3). */
export async function exchangeCode(
  app: CartaAppConfig,
  params: { currentUrl: URL; state: string; codeVerifier: string; redirectUri: string },
  options: OAuthCallOptions = {},
): Promise<TokenSet> {
  const configuration = configurationFor(app, options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  try {
    const response = await observed('oauth:token', options, () =>
      client.authorizationCodeGrant(
        configuration,
        params.currentUrl,
        { expectedState: params.state, pkceCodeVerifier: params.codeVerifier, idTokenExpected: false },
        { redirect_uri: params.redirectUri },
      ),
    )
    return normalize(response, options.now)
  } catch (err) {
    throw classify(err)
  }
}

/** refresh_token grant (RFC 6749 §6). Carta rotates refresh tokens: store the new one at once. */
export async function refreshTokens(
  app: CartaAppConfig,
  refreshToken: string,
  options: OAuthCallOptions = {},
): Promise<TokenSet> {
  const configuration = configurationFor(app, options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  try {
    const response = await observed('oauth:token', options, () => client.refreshTokenGrant(configuration, refreshToken))
    return normalize(response, options.now)
  } catch (err) {
    throw classify(err)
  }
}

/** Token revocation (RFC 7009 §2.1). An unknown or already revoked token is a success (§2.2). */
export async function revokeToken(
  app: CartaAppConfig,
  token: string,
  hint: 'access_token' | 'refresh_token',
  options: OAuthCallOptions = {},
): Promise<void> {
  const configuration = configurationFor(app, options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  try {
    await observed('oauth:revoke', options, () =>
      client.tokenRevocation(configuration, token, { token_type_hint: hint }),
    )
  } catch (err) {
    throw classify(err)
  }
}

function normalize(response: client.TokenEndpointResponse, now = Date.now()): TokenSet {
  // oauth4webapi has already checked access_token is a string, lower-cased token_type and
  // accepted only bearer/dpop, and parsed a numeric-string expires_in.
  if (response.token_type !== 'bearer') {
    throw new CartaOAuthError('malformed', `token_type "${response.token_type}" is not Bearer`)
  }
  if (!response.access_token) throw new CartaOAuthError('malformed', 'empty access_token')
  const expiresIn = response.expires_in
  return {
    accessToken: response.access_token,
    refreshToken: typeof response.refresh_token === 'string' && response.refresh_token ? response.refresh_token : null,
    expiresAt:
      typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0
        ? now + Math.round(expiresIn * 1000)
        : null,
    tokenType: 'Bearer',
    scope: typeof response.scope === 'string' ? response.scope : undefined,
  }
}

/** Maps whatever openid-client/fetch threw to a CartaOAuthError. Messages never hold tokens. */
export function classify(err: unknown): CartaOAuthError {
  if (err instanceof CartaOAuthError) return err
  if (err instanceof client.ResponseBodyError) {
    // An OAuth error response (RFC 6749 §5.2).
    const error = safeCode(err.error)
    if (err.status >= 500)
      return new CartaOAuthError('unavailable', `Carta answered ${err.status} (${error})`, {
        error,
        status: err.status,
      })
    if (error === 'invalid_grant')
      return new CartaOAuthError('invalid_grant', 'Carta rejected the grant (invalid_grant)', {
        error,
        status: err.status,
      })
    return new CartaOAuthError('rejected', `Carta rejected the request (${error})`, { error, status: err.status })
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    return new CartaOAuthError('rejected', `Carta refused client authentication (HTTP ${err.status})`, {
      error: 'invalid_client',
      status: err.status,
    })
  }
  if (err instanceof client.ClientError) {
    const code = err.code
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') {
      return new CartaOAuthError('unavailable', 'Carta did not answer in time', { timeout: true })
    }
    if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
      const status = (err.cause as Response | undefined)?.status
      if (status !== undefined && (status >= 500 || status === 429)) {
        return new CartaOAuthError('unavailable', `Carta answered HTTP ${status}`, { status })
      }
      return new CartaOAuthError(
        'malformed',
        `Carta answered HTTP ${status ?? '?'} without an OAuth error`,
        status === undefined ? {} : { status },
      )
    }
    return new CartaOAuthError('malformed', `Carta's answer was not a valid OAuth response (${code ?? err.message})`)
  }
  if (err instanceof client.AuthorizationResponseError) {
    return new CartaOAuthError('rejected', `Carta returned an error (${safeCode(err.error)})`, {
      error: safeCode(err.error),
    })
  }
  const e = err as { name?: string; cause?: { name?: string; code?: string } }
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return new CartaOAuthError('unavailable', 'Carta did not answer in time', { timeout: true })
  }
  if (err instanceof TypeError) {
    // fetch() failing: connection refused, reset, DNS…
    return new CartaOAuthError('unavailable', `Carta could not be reached (${e.cause?.code ?? 'network error'})`)
  }
  return new CartaOAuthError('unavailable', `Unexpected failure talking to Carta (${(err as Error)?.name ?? 'error'})`)
}

/** OAuth error codes are %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §5.2); keep log/page text tame. */
export function safeCode(value: unknown): string {
  return typeof value === 'string' && /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(value) ? value : 'unknown_error'
}
