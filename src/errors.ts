// Errors of the application: a code naming what went wrong, a plain sentence (for logs and the
// CLI) and the facts the page needs. No status codes, no links: the HTTP layer maps each code to a
// page once (src/http/error-pages.ts), and the coming API maps the same codes to problem+json
// (RFC 9457). See src/README.md, "Errors".

/** Where a failed connection may start over (the callback's retry button). */
export type Retry = { retry: 'start' } | { retry: 'app'; appKey: string } | { retry: 'none' }

/** Every error code with the details its page needs. */
export interface ErrorDetails {
  /** A request the schema could not express a rule for (e.g. a date range upside down). */
  'request.invalid': { title: string }
  'request.not_found': Record<string, never>
  'operator.invalid': Record<string, never>
  'operator.not_found': { operatorId: number }
  /** The signed-in operator's role does not allow the route (src/http/routes/admin/access.ts). */
  'operator.forbidden': { role: string; needed: string }
  'operator.disabled': Record<string, never>
  /** A single sign-on identity whose name another account holds. */
  'operator.identity_conflict': Record<string, never>
  /** Password sign-in is switched off (OPERATOR_PASSWORD_SIGN_IN=false). */
  'operator.password_sign_in_off': Record<string, never>
  /** The identity provider could not be reached or answered badly; nobody was signed in. */
  'sso.unavailable': { detail: string }
  /** The callback cannot be used: no sign-in pending in this browser, or it was used already. */
  'sso.no_state': Record<string, never>
  /** The provider's answer failed validation (`reason` is logged, not shown). */
  'sso.refused': { reason: string }
  /** A valid identity that the allowed domains / groups (or the role mapping) keep out. */
  'sso.not_allowed': { reason: string }
  'rollout.invalid': { field: 'name' | 'app' | 'scopes' }
  'rollout.not_found': { rolloutId: number }
  /** An archived rollout issues no more links. */
  'rollout.archived': { rolloutId: number }
  'user.not_found': { userId: number }
  'app.not_found': { appId: number }
  'app.unknown_key': { key: string }
  'app.no_current': { environment: string }
  'app.already_retired': { name: string }
  'app.last_current': { name: string; environment: string }
  'app.successor_needed': { appId: number; name: string; environment: string }
  /** The chosen successor is not an active app (or is the retired app itself). */
  'app.successor_invalid': { appId: number; name: string }
  /** Retired apps accept no new connections. */
  'app.retired': { name: string }
  'app.not_configured': { name: string | null }
  'grant.nothing_to_revoke': { userId: number }
  /** The grant is broken, revoked or gone: only a new connection helps. */
  'grant.reconnect_required': { grantId: number; reason: string }
  /** Carta could not be reached (or timed out); nothing was changed. */
  'carta.unavailable': { detail: string }
  /** Carta answered in a way we could not use; nothing was changed. */
  'carta.bad_answer': { detail: string }
  /** Carta has nothing at the address asked for (`resource`: Carta's name for it, e.g. "issuer"). */
  'carta.not_found': { resource: string }
  /** Carta refused for a reason other than a missing scope (its error `reason`, e.g. ACCESS_TO_RESOURCE_RESTRICTED). */
  'carta.access_restricted': { reason: string }
  'feature.not_requestable': { feature: string; missing: string[] }
  'lacking.unknown_scope': { scope: string }
  'lacking.unknown_app': { appId: number }
  'lacking.bad_cursor': Record<string, never>
  'link.tampered': Record<string, never>
  'link.expired': { ttlDays: number }
  'link.used': Record<string, never>
  'link.archived': Record<string, never>
  'link.app_unavailable': Record<string, never>
  /** An operator revoked the link. */
  'link.revoked': Record<string, never>
  'link.not_found': Record<string, never>
  /** Email is off (production without SMTP_URL). */
  'mail.not_configured': Record<string, never>
  'mail.campaign_not_found': { campaignId: number }
  'mail.bad_selection': { reason: string }
  'mail.bad_unsubscribe': Record<string, never>
  'connect.bad_scopes': { app: string; outside: string[] }
  'connect.no_state': Retry
  'connect.state_rejected': Retry & { reason: string }
  'connect.no_code': Retry
  'connect.declined': Retry
  'connect.carta_error': Retry & { error: string }
  'connect.code_refused': Retry
  'connect.token_refused': Retry & { error: string }
  'connect.carta_timeout': Retry
  'connect.carta_unavailable': Retry & { detail: string }
  'connect.carta_malformed': Retry
  'connect.unrequested_scope': Retry & { scopes: string[] }
  'connect.user_unknown': Retry & { timeout: boolean }
  'connect.identity_mismatch': { reason: string }
  'connect.link_unavailable': Record<string, never>
  'report.not_run': Record<string, never>
  'report.not_found': Record<string, never>
  'report.unavailable': { runId: number; status: string; error: string | null }
  /** An uploaded import file that cannot be imported (`reason` says why, for the page). */
  'import.upload_invalid': { reason: string }
  /** An uploaded import file over IMPORT_UPLOAD_MAX_BYTES. */
  'import.upload_too_large': { maxBytes: number }
  'import.run_not_found': { runId: number }
  /** The API request carries no usable key (missing, malformed, unknown or revoked). */
  'api.unauthorized': { reason: string }
  /** The key lacks the permission the route needs. */
  'api.forbidden': { permission: string }
  /** No end user under this Carta or external id. */
  'api.user_not_found': Record<string, never>
  /** The user has no usable grant: they must connect again (the reconnect URL says where). */
  'api.reconnect_required': { reconnectUrl: string; reason: string }
  'api_key.invalid': Record<string, never>
  'api_key.not_found': { keyId: number }
  'webhook.invalid': Record<string, never>
  'webhook.not_found': { id: number }
  /** A connect session's returnTo is not under an allowed origin. */
  'connect_session.bad_return': { origin: string }
  'connect_session.unavailable': { reason: 'unknown' | 'used' | 'expired' }
  'connect_session.external_taken': Record<string, never>
}

export type ErrorCode = keyof ErrorDetails

export class DomainError<C extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: C,
    message: string,
    readonly details: ErrorDetails[C],
  ) {
    super(message)
    this.name = 'DomainError'
  }
}

/** True when `err` is a DomainError (with `code`, when given). */
export function isDomainError<C extends ErrorCode>(err: unknown, code?: C): err is DomainError<C> {
  return err instanceof DomainError && (code === undefined || err.code === code)
}
