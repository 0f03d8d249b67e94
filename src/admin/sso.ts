// Operator single sign-on with OpenID Connect (openid-client): discovery (OpenID Connect
// Discovery 1.0), the authorization code flow with PKCE (RFC 7636, S256) and a nonce, and the ID
// token validated by openid-client (issuer, audience, signature, expiry, nonce: OpenID Connect
// Core §3.1.3.7). Then who may come in: the allowed e-mail domains and/or groups, and the role a
// claim maps to. The HTTP layer (src/http/routes/admin/sso.ts) keeps the pending sign-in in the
// browser's session and turns the identity into an operator session.
import * as oidc from 'openid-client'
import { type OperatorSsoConfig, isLoopbackUrl } from '../config.js'
import { DomainError } from '../errors.js'
import type { ProviderIdentity } from './operators.js'
import type { OperatorRole } from './tables.js'

/** What the browser's session keeps between the redirect and the callback (single use). */
export interface PendingSignIn {
  state: string
  nonce: string
  verifier: string
  /** Where to go after signing in (a dashboard path, checked again by the caller). */
  next: string
  startedAt: number
}

/** A pending sign-in older than this is refused (the provider's login page may take a while). */
export const PENDING_TTL_MS = 10 * 60 * 1000

const unavailable = (detail: string) => new DomainError('sso.unavailable', `Identity provider: ${detail}`, { detail })
const refused = (reason: string) => new DomainError('sso.refused', `Sign-in refused: ${reason}`, { reason })
const notAllowed = (reason: string) => new DomainError('sso.not_allowed', `Sign-in not allowed: ${reason}`, { reason })

/**
 * One per app (held by the route plugin, never in module state): the provider's metadata is
 * discovered on first use and kept; a failed discovery is tried again on the next sign-in.
 */
export class OperatorSso {
  private discovered: Promise<oidc.Configuration> | null = null

  constructor(
    private readonly sso: OperatorSsoConfig,
    private readonly timeoutMs: number,
  ) {}

  /** The provider's authorization URL for a new sign-in, and what the session must keep. */
  async start(redirectUri: string, next: string, now: number): Promise<{ url: string; pending: PendingSignIn }> {
    const config = await this.configuration()
    const verifier = oidc.randomPKCECodeVerifier()
    const pending: PendingSignIn = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier,
      next,
      startedAt: now,
    }
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.sso.scopes.join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    })
    return { url: url.href, pending }
  }

  /**
   * Exchanges the callback's code and validates the ID token; returns its claims. A provider
   * error, a bad state, a code refused at the token endpoint or an ID token that fails validation
   * is `sso.refused`; an unreachable provider is `sso.unavailable`.
   */
  async finish(callbackUrl: URL, pending: PendingSignIn): Promise<Record<string, unknown>> {
    const config = await this.configuration()
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      })
      const claims = tokens.claims()
      if (!claims) throw refused('no ID token')
      return await this.withUserInfo(config, tokens.access_token, claims as Record<string, unknown>)
    } catch (err) {
      throw classify(err)
    }
  }

  /**
   * Many providers put e-mail and groups only at the UserInfo endpoint when an access token is
   * issued with the ID token (OpenID Connect Core §5.4). When a claim the rules need is missing,
   * they are read there; its `sub` must equal the ID token's (§5.3.2, checked by openid-client),
   * and the ID token's own claims win over UserInfo's.
   */
  private async withUserInfo(
    config: oidc.Configuration,
    accessToken: string,
    claims: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const needed = [
      'email',
      ...(this.sso.allowedGroups.length ? [this.sso.groupsClaim] : []),
      ...(this.sso.roleClaim ? [this.sso.roleClaim] : []),
    ]
    if (needed.every((name) => claims[name] !== undefined)) return claims
    if (!config.serverMetadata().userinfo_endpoint) return claims
    const info = await oidc.fetchUserInfo(config, accessToken, String(claims.sub))
    return { ...(info as Record<string, unknown>), ...claims }
  }

  private async configuration(): Promise<oidc.Configuration> {
    this.discovered ??= oidc
      .discovery(
        new URL(this.sso.issuer),
        this.sso.clientId,
        undefined,
        // client_secret_basic: the method every provider supports (RFC 6749 §2.3.1).
        oidc.ClientSecretBasic(this.sso.clientSecret),
        {
          timeout: Math.ceil(this.timeoutMs / 1000),
          // Plain HTTP only to a loopback issuer (config.ts refuses any other http issuer).
          ...(isLoopbackUrl(this.sso.issuer) && this.sso.issuer.startsWith('http:')
            ? { execute: [oidc.allowInsecureRequests] }
            : {}),
        },
      )
      .catch((err: unknown) => {
        this.discovered = null
        throw unavailable(`discovery failed (${describe(err)})`)
      })
    return this.discovered
  }
}

/** A failure of the code exchange as the page and the log should see it (never a token). */
function classify(err: unknown): DomainError {
  if (err instanceof DomainError) return err
  if (err instanceof oidc.AuthorizationResponseError) return refused(`provider error ${err.error}`)
  if (err instanceof oidc.ResponseBodyError) return refused(`token endpoint ${err.status} ${err.error}`)
  if (err instanceof oidc.ClientError) {
    // Transport trouble reaches here as a ClientError without an OAUTH_ code, or a fetch failure.
    if (
      err.code === undefined ||
      err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' ||
      err.code === 'OAUTH_RESPONSE_IS_NOT_JSON'
    )
      return unavailable(describe(err))
    // The claim that failed (aud, exp, nonce…) sits on the cause's cause (oauth4webapi).
    const claim = (err.cause as { cause?: { claim?: unknown } } | undefined)?.cause?.claim
    return refused(`${err.code}${typeof claim === 'string' ? ` (${claim})` : ''}: ${err.message}`)
  }
  return unavailable(describe(err))
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  return `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message}`.slice(0, 300)
}

/** A claim's values as strings: a string, or an array of strings (groups, roles). */
function values(claim: unknown): string[] {
  if (typeof claim === 'string') return [claim]
  if (Array.isArray(claim)) return claim.filter((v): v is string => typeof v === 'string')
  return []
}

/**
 * Who the validated claims are, if they may come in: a verified e-mail in an allowed domain
 * and/or a group among the allowed ones (both when both are configured), and the role the role
 * claim maps to (the highest when several do; refused when a role claim is configured but maps
 * to none).
 */
export function admitIdentity(sso: OperatorSsoConfig, claims: Record<string, unknown>): ProviderIdentity {
  const subject = typeof claims.sub === 'string' ? claims.sub : ''
  const issuer = typeof claims.iss === 'string' ? claims.iss : sso.issuer
  if (!subject) throw refused('ID token without sub')
  const rawEmail = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : ''
  // A provider that says the address is unverified is not trusted with it (Core §5.1 email_verified).
  const email = rawEmail && claims.email_verified !== false && rawEmail.length <= 254 ? rawEmail : null
  if (sso.allowedDomains.length > 0) {
    if (!email) throw notAllowed(rawEmail ? 'e-mail address not verified' : 'no e-mail claim')
    const domain = email.slice(email.lastIndexOf('@') + 1)
    if (!email.includes('@') || !sso.allowedDomains.includes(domain)) throw notAllowed(`domain ${domain} not allowed`)
  }
  if (sso.allowedGroups.length > 0) {
    const groups = values(claims[sso.groupsClaim])
    if (!groups.some((g) => sso.allowedGroups.includes(g))) throw notAllowed('not in an allowed group')
  }
  let role: OperatorRole | null = null
  if (sso.roleClaim) {
    const rank = ['viewer', 'operator', 'admin'] as const
    for (const value of values(claims[sso.roleClaim])) {
      const mapped = sso.roleMap.get(value)
      if (mapped && (role === null || rank.indexOf(mapped) > rank.indexOf(role))) role = mapped
    }
    if (role === null) throw notAllowed(`no role in the ${sso.roleClaim} claim`)
  }
  return { issuer, subject, email, role, defaultRole: sso.defaultRole }
}
