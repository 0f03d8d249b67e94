// The sandbox's authorization server state and rules, in memory (one store per sandbox instance).
// It enforces what Carta enforces — registered clients and redirect URIs, client secrets, each
// client's allowed scopes, single-use 60-second codes, PKCE S256, rotating refresh tokens — so
// that tests against it mean something. HTTP lives in the route modules; this file has no I/O.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Clock } from '../clock.js'
import { parseScopes } from '../scopes.js'
import { CARTA_RATE_LIMIT, RateLimiter, type RateLimitSettings } from './rate-limit.js'

export const CODE_TTL_MS = 60_000 // Carta: the code lives 60 seconds
export const ACCESS_TOKEN_TTL_S = 3600 // Carta: access tokens live one hour
export const PENDING_TTL_MS = 10 * 60_000 // a consent page left open longer must be started again

export interface SandboxClient {
  clientId: string
  clientSecret: string
  name: string
  /** Scopes this client may request (the OAuth app's scopes at Carta). */
  scopes: string[]
  /** Registered redirect URIs, matched as exact strings (as Carta does). */
  redirectUris: string[]
}

/** An OAuth error answered as JSON (RFC 6749 §5.2) or as a redirect (§4.1.2.1). */
export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description)
    this.name = 'OAuthError'
  }
}

export interface PendingAuthorization {
  id: string
  clientId: string
  userId: string
  redirectUri: string
  state: string | null
  scopes: string[]
  codeChallenge: string | null
  createdAt: number
}

interface CodeRecord {
  clientId: string
  userId: string
  redirectUri: string
  requestedScopes: string[]
  grantedScopes: string[]
  codeChallenge: string | null
  issuedAt: number
  usedAt: number | null
  grantId: string | null
}

export interface GrantRecord {
  id: string
  clientId: string
  userId: string
  /** Scopes the grant currently holds (may shrink through the shrink control). */
  scopes: string[]
  requestedScopes: string[]
  createdAt: number
  /** Scopes the user removed at "Carta"; applied at the grant's next refresh. */
  pendingRemoval: string[]
}

export type TokenKind = 'access' | 'refresh'

export interface TokenRecord {
  id: string
  value: string
  kind: TokenKind
  grantId: string
  clientId: string
  userId: string
  scopes: string[]
  issuedAt: number
  expiresAt: number | null
  revokedAt: number | null
  revokedReason: 'revoked' | 'rotated' | 'code_reuse' | null
}

export type FailEndpoint = 'token' | 'revoke' | 'api'

/** An armed failure: the status, and for the API an ErrorInfo reason or a 429's wait. */
export interface InjectedFailure {
  status: number
  reason?: string
  retryAfterSeconds?: number
}

export interface TokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token: string
  scope?: string
}

interface GrantCounter {
  requests: number
  ok: number
  errors: number
}

export function emptyCounters() {
  return {
    authorizeRequests: 0,
    signIns: 0,
    consents: 0,
    denials: 0,
    tokenRequests: 0,
    codeExchanges: 0,
    refreshes: 0,
    tokenErrors: 0,
    revocations: 0,
    apiCalls: 0,
    apiErrors: 0,
    /** API requests refused with 429 by the rate limit. */
    rateLimited: 0,
    injectedFailures: 0,
    /** Grants created by the mint-grants control. */
    mintedGrants: 0,
    byGrant: {} as Record<string, GrantCounter>,
  }
}

export type Counters = ReturnType<typeof emptyCounters>

const random = (bytes = 32): string => randomBytes(bytes).toString('base64url')
const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest()

/** Constant-time string comparison (hashes first so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b))
}

/** RFC 7636 §4.1: code_verifier = 43–128 characters of [A-Z a-z 0-9 - . _ ~]; same for an S256 challenge. */
const PKCE_VALUE = /^[A-Za-z0-9\-._~]{43,128}$/

export class SandboxStore {
  readonly clients: ReadonlyMap<string, SandboxClient>
  /** Moved by the clock control so a demo or test can jump past token expiry. */
  offsetMs = 0
  counters: Counters = emptyCounters()
  /** Protects the sandbox home page's form against cross-site posts (no session in the sandbox). */
  readonly formToken = random(24)
  private pending = new Map<string, PendingAuthorization>()
  private codes = new Map<string, CodeRecord>()
  private grants = new Map<string, GrantRecord>()
  private tokens = new Map<string, TokenRecord>()
  private failures = new Map<FailEndpoint, InjectedFailure & { remaining: number }>()
  private seq = 0
  /** The API's rate limit per client id (wall time: Carta counts real seconds, not the demo clock). */
  readonly rateLimiter: RateLimiter
  private readonly initialRateLimit: RateLimitSettings

  constructor(
    clients: SandboxClient[],
    private readonly baseClock: Clock,
    options: { rateLimit?: RateLimitSettings; rateLimitNow?: () => number } = {},
  ) {
    this.clients = new Map(clients.map((c) => [c.clientId, c]))
    this.initialRateLimit = { ...(options.rateLimit ?? CARTA_RATE_LIMIT) }
    this.rateLimiter = new RateLimiter(this.initialRateLimit, options.rateLimitNow)
  }

  now(): number {
    return this.baseClock.now() + this.offsetMs
  }

  reset(): void {
    this.offsetMs = 0
    this.counters = emptyCounters()
    this.pending.clear()
    this.codes.clear()
    this.grants.clear()
    this.tokens.clear()
    this.failures.clear()
    this.widenNext = []
    this.rateLimiter.configure(this.initialRateLimit)
  }

  // --- client authentication (RFC 6749 §2.3.1) ----------------------------------------------

  /** The client named by an `Authorization: Basic …` header whose secret matches, else null. */
  authenticateClient(header: string | undefined): SandboxClient | null {
    const credentials = parseBasicAuth(header)
    if (!credentials) return null
    const client = this.clients.get(credentials.id)
    // Compare even for an unknown client so timing does not tell which client ids exist.
    const ok = safeEqual(credentials.secret, client?.clientSecret ?? '\u0000no-client')
    return client && ok ? client : null
  }

  // --- authorization request (RFC 6749 §4.1.1) ----------------------------------------------

  /**
   * Checks the parts of an authorization request that decide whether we may redirect at all:
   * an unknown client or an unregistered redirect URI must never be redirected to (§4.1.2.1).
   */
  verifyClientAndRedirect(query: Record<string, unknown>): { client: SandboxClient; redirectUri: string } {
    const clientId = single(query, 'client_id')
    if (!clientId) throw new OAuthError('invalid_request', 'The request does not name a client (client_id).')
    const client = this.clients.get(clientId)
    if (!client) throw new OAuthError('invalid_client', `No application with client id "${clientId}" is registered.`)
    const redirectUri = single(query, 'redirect_uri')
    if (!redirectUri) throw new OAuthError('invalid_request', 'The request has no redirect_uri.')
    if (!client.redirectUris.includes(redirectUri)) {
      throw new OAuthError('invalid_request', `The redirect URI is not registered for ${client.name}: ${redirectUri}`)
    }
    return { client, redirectUri }
  }

  /** The rest of the request; errors here are redirected back to the client with `error=`. */
  verifyAuthorizationParameters(
    client: SandboxClient,
    query: Record<string, unknown>,
  ): { scopes: string[]; codeChallenge: string | null } {
    for (const name of ['response_type', 'scope', 'state', 'code_challenge', 'code_challenge_method']) {
      if (Array.isArray(query[name])) throw new OAuthError('invalid_request', `The parameter ${name} is repeated.`) // §3.1
    }
    const responseType = single(query, 'response_type')
    if (!responseType) throw new OAuthError('invalid_request', 'response_type is required.')
    if (responseType !== 'code')
      throw new OAuthError('unsupported_response_type', 'Only response_type=code is supported.')
    const scopes = parseScopes(single(query, 'scope') ?? '')
    if (scopes.length === 0) throw new OAuthError('invalid_scope', 'The request names no scope.')
    const notAllowed = scopes.filter((s) => !client.scopes.includes(s))
    if (notAllowed.length > 0)
      throw new OAuthError('invalid_scope', `${client.name} may not request: ${notAllowed.join(' ')}`)
    const challenge = single(query, 'code_challenge')
    const method = single(query, 'code_challenge_method')
    if (method && !challenge) throw new OAuthError('invalid_request', 'code_challenge_method without code_challenge.')
    if (challenge) {
      // RFC 7636 §4.3: absent method means "plain", which this server (like Carta) does not accept.
      if (method !== 'S256') throw new OAuthError('invalid_request', 'Only code_challenge_method=S256 is supported.')
      if (!PKCE_VALUE.test(challenge)) throw new OAuthError('invalid_request', 'The code_challenge is malformed.')
    }
    return { scopes, codeChallenge: challenge ?? null }
  }

  createPending(input: Omit<PendingAuthorization, 'id' | 'createdAt'>): PendingAuthorization {
    this.prune()
    const pending: PendingAuthorization = { ...input, id: random(18), createdAt: this.now() }
    this.pending.set(pending.id, pending)
    return pending
  }

  /** Single use: a consent decision can be submitted once, by the user it was shown to. */
  takePending(id: string, userId: string): PendingAuthorization | null {
    const pending = this.pending.get(id)
    if (!pending || pending.userId !== userId) return null
    this.pending.delete(id)
    if (this.now() - pending.createdAt > PENDING_TTL_MS) return null
    return pending
  }

  /** Scopes the next issued code grants beyond the user's choice (a test of the client's checks). */
  widenNext: string[] = []

  issueCode(pending: PendingAuthorization, chosenScopes: string[]): string {
    this.prune()
    const extra = this.widenNext.filter((s) => !chosenScopes.includes(s))
    this.widenNext = []
    const grantedScopes = [...chosenScopes, ...extra]
    const code = random(32)
    this.codes.set(code, {
      clientId: pending.clientId,
      userId: pending.userId,
      redirectUri: pending.redirectUri,
      requestedScopes: pending.scopes,
      grantedScopes,
      codeChallenge: pending.codeChallenge,
      issuedAt: this.now(),
      usedAt: null,
      grantId: null,
    })
    return code
  }

  // --- token endpoint (RFC 6749 §4.1.3, §6) -----------------------------------------------------

  exchangeCode(client: SandboxClient, form: Record<string, unknown>): TokenResponse {
    const code = single(form, 'code')
    if (!code) throw new OAuthError('invalid_request', 'code is required.')
    const record = this.codes.get(code)
    if (!record) throw new OAuthError('invalid_grant', 'The authorization code is unknown.')
    if (record.usedAt !== null) {
      // §4.1.2: a code used twice is an attack signal: refuse, and revoke what it produced.
      if (record.grantId) this.revokeGrant(record.grantId, 'code_reuse')
      throw new OAuthError('invalid_grant', 'The authorization code has already been used.')
    }
    record.usedAt = this.now()
    if (record.clientId !== client.clientId)
      throw new OAuthError('invalid_grant', 'The authorization code was issued to another client.')
    if (this.now() - record.issuedAt > CODE_TTL_MS)
      throw new OAuthError('invalid_grant', 'The authorization code has expired.')
    // §4.1.3: redirect_uri must be present and identical when it was in the authorization request.
    if (single(form, 'redirect_uri') !== record.redirectUri)
      throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request.')
    const verifier = single(form, 'code_verifier')
    if (record.codeChallenge) {
      // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal the challenge.
      if (!verifier || !PKCE_VALUE.test(verifier))
        throw new OAuthError('invalid_grant', 'code_verifier is missing or malformed.')
      if (!safeEqual(sha256(verifier).toString('base64url'), record.codeChallenge))
        throw new OAuthError('invalid_grant', 'PKCE verification failed.')
    } else if (verifier) {
      // No challenge was sent, so a verifier means the client's PKCE state got mixed up (OAuth 2.1 §4.1.3).
      throw new OAuthError('invalid_grant', 'code_verifier sent but the authorization request had no code_challenge.')
    }
    const grant: GrantRecord = {
      id: `g${++this.seq}`,
      clientId: client.clientId,
      userId: record.userId,
      scopes: record.grantedScopes,
      requestedScopes: record.requestedScopes,
      createdAt: this.now(),
      pendingRemoval: [],
    }
    this.grants.set(grant.id, grant)
    record.grantId = grant.id
    const response = this.issueTokens(grant, grant.scopes)
    // RFC 6749 §5.1: `scope` is required only when it differs from the request; omit it otherwise
    // so clients exercise their "assumed" path.
    if (sameSet(grant.scopes, record.requestedScopes)) delete response.scope
    return response
  }

  refresh(client: SandboxClient, form: Record<string, unknown>): TokenResponse {
    const value = single(form, 'refresh_token')
    if (!value) throw new OAuthError('invalid_request', 'refresh_token is required.')
    const token = this.tokens.get(value)
    if (token?.kind !== 'refresh' || token.clientId !== client.clientId)
      throw new OAuthError('invalid_grant', 'The refresh token is unknown.')
    if (token.revokedAt !== null) {
      const why =
        token.revokedReason === 'rotated' ? 'has already been used (refresh tokens rotate)' : 'has been revoked'
      throw new OAuthError('invalid_grant', `The refresh token ${why}.`)
    }
    const grant = this.grants.get(token.grantId)!
    let requested: string[] | null = null
    if (form.scope !== undefined) {
      requested = parseScopes(single(form, 'scope') ?? '')
      if (requested.length === 0) throw new OAuthError('invalid_scope', 'The scope parameter is empty.')
    }
    // A permission the user removed at Carta takes effect now (the shrink control).
    if (grant.pendingRemoval.length > 0) {
      grant.scopes = grant.scopes.filter((s) => !grant.pendingRemoval.includes(s))
      grant.pendingRemoval = []
    }
    // §6: a refresh may narrow the scope, never widen it beyond what the grant holds.
    if (requested) {
      const extra = requested.filter((s) => !grant.scopes.includes(s))
      if (extra.length > 0) throw new OAuthError('invalid_scope', `Not held by this grant: ${extra.join(' ')}`)
    }
    // Rotation: the old refresh token stops working at once.
    token.revokedAt = this.now()
    token.revokedReason = 'rotated'
    return this.issueTokens(grant, requested ?? grant.scopes)
  }

  private issueTokens(grant: GrantRecord, scopes: string[], accessTtlSeconds = ACCESS_TOKEN_TTL_S): TokenResponse {
    const now = this.now()
    const access = this.addToken(grant, 'access', scopes, now + accessTtlSeconds * 1000)
    const refresh = this.addToken(grant, 'refresh', grant.scopes, null)
    return {
      access_token: access.value,
      token_type: 'Bearer',
      expires_in: accessTtlSeconds,
      refresh_token: refresh.value,
      scope: scopes.join(' '),
    }
  }

  private addToken(grant: GrantRecord, kind: TokenKind, scopes: string[], expiresAt: number | null): TokenRecord {
    const record: TokenRecord = {
      id: `t${++this.seq}`,
      value: random(32),
      kind,
      grantId: grant.id,
      clientId: grant.clientId,
      userId: grant.userId,
      scopes: [...scopes],
      issuedAt: this.now(),
      expiresAt,
      revokedAt: null,
      revokedReason: null,
    }
    this.tokens.set(record.value, record)
    return record
  }

  // --- revocation (RFC 7009) ---------------------------------------------------------------------

  /**
   * Revokes a token of `client`. Unknown tokens and other clients' tokens are ignored (§2.2: the
   * answer is 200 either way). A refresh token takes its whole grant with it (§2.1).
   */
  revoke(client: SandboxClient, value: string): boolean {
    const token = this.tokens.get(value)
    if (!token || token.clientId !== client.clientId) return false
    if (token.kind === 'refresh') this.revokeGrant(token.grantId, 'revoked')
    else if (token.revokedAt === null) {
      token.revokedAt = this.now()
      token.revokedReason = 'revoked'
    }
    return true
  }

  private revokeGrant(grantId: string, reason: 'revoked' | 'code_reuse'): void {
    for (const token of this.tokens.values()) {
      if (token.grantId === grantId && token.revokedAt === null) {
        token.revokedAt = this.now()
        token.revokedReason = reason
      }
    }
  }

  // --- resource server (RFC 6750) ----------------------------------------------------------------

  /** A live access token by value, or null when unknown, expired or revoked. */
  liveAccessToken(value: string): TokenRecord | null {
    const token = this.tokens.get(value)
    if (token?.kind !== 'access' || token.revokedAt !== null) return null
    if (token.expiresAt !== null && this.now() >= token.expiresAt) return null
    return token
  }

  /** The client a token value was issued to, whatever its state (the rate limit counts per client). */
  tokenClientId(value: string): string | null {
    return this.tokens.get(value)?.clientId ?? null
  }

  // --- controls ------------------------------------------------------------------------------------

  /**
   * A grant as if `userId` had connected `client` earlier with `scopes` (the mint-grants control):
   * real tokens that work, refresh and revoke like any other. `accessTtlSeconds` may be ≤ 0 to
   * hand out an access token that has already expired.
   */
  mintGrant(
    client: SandboxClient,
    userId: string,
    scopes: string[],
    accessTtlSeconds = ACCESS_TOKEN_TTL_S,
  ): { accessToken: string; refreshToken: string; accessExpiresAt: number; scopes: string[] } {
    const granted = parseScopes(scopes.join(' '))
    const notAllowed = granted.filter((s) => !client.scopes.includes(s))
    if (granted.length === 0 || notAllowed.length > 0)
      throw new OAuthError('invalid_scope', `${client.name} may not hold: ${notAllowed.join(' ') || '(no scope)'}`)
    const grant: GrantRecord = {
      id: `g${++this.seq}`,
      clientId: client.clientId,
      userId,
      scopes: granted,
      requestedScopes: granted,
      createdAt: this.now(),
      pendingRemoval: [],
    }
    this.grants.set(grant.id, grant)
    const tokens = this.issueTokens(grant, granted, accessTtlSeconds)
    this.counters.mintedGrants++
    return {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      accessExpiresAt: this.now() + accessTtlSeconds * 1000,
      scopes: granted,
    }
  }

  /** The next `times` calls to `endpoint` answer `failure.status` (retry tests). */
  failNext(endpoint: FailEndpoint, failure: InjectedFailure, times: number): void {
    if (times <= 0) this.failures.delete(endpoint)
    else this.failures.set(endpoint, { ...failure, remaining: times })
  }

  /** Consumes one injected failure for `endpoint`, or returns null. */
  takeFailure(endpoint: FailEndpoint): InjectedFailure | null {
    const f = this.failures.get(endpoint)
    if (!f) return null
    if (--f.remaining <= 0) this.failures.delete(endpoint)
    this.counters.injectedFailures++
    const { remaining: _remaining, ...failure } = f
    return failure
  }

  /** The user removed permissions at Carta: the grant's next refresh reports fewer scopes. */
  shrink(userId: string, clientId: string, removeScopes: string[]): number {
    let matched = 0
    for (const grant of this.grants.values()) {
      if (grant.userId !== userId || grant.clientId !== clientId || !this.grantIsLive(grant.id)) continue
      grant.pendingRemoval = [...new Set([...grant.pendingRemoval, ...removeScopes])]
      matched++
    }
    return matched
  }

  private grantIsLive(grantId: string): boolean {
    for (const t of this.tokens.values())
      if (t.grantId === grantId && t.kind === 'refresh' && t.revokedAt === null) return true
    return false
  }

  countGrant(grantType: string, ok: boolean): void {
    const c = this.counters.byGrant[grantType] ?? { requests: 0, ok: 0, errors: 0 }
    this.counters.byGrant[grantType] = c
    c.requests++
    if (ok) c.ok++
    else c.errors++
  }

  /** Counters and every token's metadata — never a token value. */
  stats() {
    const now = this.now()
    return {
      now,
      clockOffsetSeconds: Math.round(this.offsetMs / 1000),
      ...this.counters,
      rateLimit: this.rateLimiter.current,
      pendingFailures: Object.fromEntries([...this.failures].map(([k, v]) => [k, { ...v }])),
      grants: [...this.grants.values()].map((g) => ({
        id: g.id,
        clientId: g.clientId,
        userId: g.userId,
        scopes: g.scopes.join(' '),
        requestedScopes: g.requestedScopes.join(' '),
        pendingRemoval: g.pendingRemoval.join(' '),
        createdAt: g.createdAt,
      })),
      tokens: [...this.tokens.values()].map((t) => ({
        id: t.id,
        kind: t.kind,
        grantId: t.grantId,
        clientId: t.clientId,
        userId: t.userId,
        scopes: t.scopes.join(' '),
        issuedAt: t.issuedAt,
        expiresAt: t.expiresAt,
        status:
          t.revokedAt !== null
            ? t.revokedReason === 'rotated'
              ? 'rotated'
              : 'revoked'
            : t.expiresAt !== null && now >= t.expiresAt
              ? 'expired'
              : 'live',
        revokedAt: t.revokedAt,
        revokedReason: t.revokedReason,
      })),
    }
  }

  /** Drops abandoned consent pages and old codes (memory stays bounded in a long demo). */
  private prune(): void {
    const now = this.now()
    for (const [id, p] of this.pending) if (now - p.createdAt > PENDING_TTL_MS) this.pending.delete(id)
    for (const [code, c] of this.codes) if (now - c.issuedAt > PENDING_TTL_MS) this.codes.delete(code)
  }
}

/** A parameter given once as a string; undefined when absent, repeated or not a string. */
export function single(params: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = params?.[name]
  return typeof v === 'string' ? v : undefined
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((s) => b.includes(s))
}

/**
 * `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` — RFC 6749 §2.3.1 has the
 * id and secret form-urlencoded before base64, so decode both after splitting.
 */
export function parseBasicAuth(header: string | undefined): { id: string; secret: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '')
  if (!m) return null
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return null
  try {
    const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
    const id = formDecode(decoded.slice(0, colon))
    const secret = formDecode(decoded.slice(colon + 1))
    return id ? { id, secret } : null
  } catch {
    return null
  }
}
