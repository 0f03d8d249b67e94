// The one table from error codes (src/errors.ts) to pages: status, title, message and the links
// the error page offers. The error plugin (plugins/errors.ts) renders it; an /api route will map
// the same entries to problem+json (RFC 9457: status and title as they are, type from the code).
import type { DomainError, ErrorCode, ErrorDetails, Retry } from '../errors.js'
import { describeScope } from '../scopes.js'

export interface ErrorPage {
  status: number
  title: string
  message: string
  retryHref?: string
  retryLabel?: string
  backHref?: string
  backLabel?: string
  /** The reconnect page instead of the plain error page. */
  reconnect?: boolean
}

type PageFor<C extends ErrorCode> = (details: ErrorDetails[C], message: string) => ErrorPage

const TO_APPS = { backHref: '/admin/apps', backLabel: 'Back to apps' }
const TO_AUDIT = { backHref: '/admin/audit', backLabel: 'Back to the audit trail' }
const TO_OPERATORS = { backHref: '/admin/operators', backLabel: 'Back to operators' }
const TO_SIGN_IN = { backHref: '/admin/sign-in', backLabel: 'Back to sign-in' }
const TO_REPORTS = { backHref: '/admin/reports', backLabel: 'Back to reports' }
const TO_COMPANIES = { backHref: '/features/issuers', backLabel: 'Back to your companies' }
const TO_API_KEYS = { backHref: '/admin/api-keys', backLabel: 'Back to API keys' }
const TO_WEBHOOKS = { backHref: '/admin/webhooks', backLabel: 'Back to webhooks' }
const TO_IMPORTS = { backHref: '/admin/imports', backLabel: 'Back to imports' }
const CURRENT_APP = { retryHref: '/carta/connect', retryLabel: 'Connect with the current app' }

/** A size for people: whole MB from one MB up, else KB. */
export function formatBytes(bytes: number): string {
  return bytes >= 1_048_576 ? `${Math.round(bytes / 1_048_576)} MB` : `${Math.ceil(bytes / 1024)} KB`
}

/** The callback's retry button: start again, connect again with the same app, or none (a link flow). */
function retryOf(details: Retry): Partial<ErrorPage> {
  if (details.retry === 'start') return { retryHref: '/carta/connect', retryLabel: 'Start again' }
  if (details.retry === 'app')
    return { retryHref: `/carta/connect?app=${encodeURIComponent(details.appKey)}`, retryLabel: 'Connect again' }
  return {}
}

const PAGES: { [C in ErrorCode]: PageFor<C> } = {
  'request.invalid': (d, message) => ({ status: 400, title: d.title, message }),
  'request.not_found': () => ({ status: 404, title: 'Page not found', message: 'There is nothing at this address.' }),
  'operator.invalid': (_d, message) => ({ status: 400, title: 'Invalid operator account', message, ...TO_OPERATORS }),
  'operator.not_found': () => ({
    status: 404,
    title: 'Operator not found',
    message: 'There is no operator account with this id.',
    ...TO_OPERATORS,
  }),
  'operator.forbidden': (d) => ({
    status: 403,
    title: 'Not allowed for your role',
    message: `Your role (${d.role}) cannot do this: it needs the ${d.needed} role. Ask an admin if you need it.`,
  }),
  'operator.disabled': () => ({
    status: 403,
    title: 'Account disabled',
    message: 'This operator account is disabled. Ask an admin to enable it.',
    ...TO_SIGN_IN,
  }),
  'operator.identity_conflict': () => ({
    status: 409,
    title: 'Account already exists',
    message:
      'Another operator account already uses this name or e-mail address. An admin must rename or remove it before you can sign in.',
    ...TO_SIGN_IN,
  }),
  'operator.password_sign_in_off': () => ({
    status: 403,
    title: 'Password sign-in is off',
    message: 'Operators sign in with single sign-on here.',
    ...TO_SIGN_IN,
  }),
  'sso.unavailable': () => ({
    status: 502,
    title: 'Sign-in service unavailable',
    message: 'The identity provider could not be reached or gave an answer we could not use. Try again shortly.',
    ...TO_SIGN_IN,
  }),
  'sso.no_state': () => ({
    status: 400,
    title: 'Sign-in expired',
    message: 'This sign-in was already used or did not start in this browser. Start again.',
    ...TO_SIGN_IN,
  }),
  'sso.refused': () => ({
    status: 401,
    title: 'Sign-in not accepted',
    message: "The identity provider's answer could not be verified, so nobody was signed in. Start again.",
    ...TO_SIGN_IN,
  }),
  'sso.not_allowed': () => ({
    status: 403,
    title: 'Not allowed to sign in',
    message: 'Your account at the identity provider is not allowed to use Scope Ledger. Ask an admin.',
    ...TO_SIGN_IN,
  }),
  'rollout.invalid': (_d, message) => ({ status: 400, title: 'The rollout is not valid', message }),
  'rollout.not_found': () => ({
    status: 404,
    title: 'Rollout not found',
    message: 'There is no rollout with this id.',
  }),
  'rollout.archived': () => ({
    status: 409,
    title: 'Rollout archived',
    message: 'An archived rollout issues no more links.',
  }),
  'user.not_found': () => ({ status: 404, title: 'User not found', message: 'There is no end user with this id.' }),
  'app.not_found': () => ({
    status: 404,
    title: 'App not found',
    message: 'There is no app with this id.',
    ...TO_APPS,
  }),
  'app.unknown_key': (d) => ({
    status: 404,
    title: 'Unknown Carta app',
    message: `There is no Carta app called "${d.key.slice(0, 64)}".`,
    ...CURRENT_APP,
  }),
  'app.no_current': (d) => ({
    status: 409,
    title: 'No Carta app is available',
    message: `No current app is configured for the ${d.environment} environment.`,
  }),
  'app.already_retired': (d) => ({
    status: 409,
    title: 'Already retired',
    message: `${d.name} was already retired.`,
    ...TO_APPS,
  }),
  'app.last_current': (d) => ({
    status: 409,
    title: 'Cannot retire the only app',
    message: `${d.name} is the current ${d.environment} app and no other active ${d.environment} app could take over. Declare a new app in the apps file first.`,
    ...TO_APPS,
  }),
  'app.successor_needed': (d) => ({
    status: 400,
    title: 'Choose the new current app',
    message: `${d.name} is the current ${d.environment} app: pick which active ${d.environment} app new connections should use instead.`,
    backHref: `/admin/apps/${d.appId}/retire`,
    backLabel: 'Back to the retire page',
  }),
  'app.successor_invalid': (d) => ({
    status: 400,
    title: 'Choose an active app',
    message: `The successor of ${d.name} must be another app that is still active.`,
    backHref: `/admin/apps/${d.appId}/successor`,
    backLabel: 'Back to choosing the successor',
  }),
  'app.retired': (d) => ({
    status: 409,
    title: 'This Carta app is retired',
    message: `"${d.name}" no longer accepts new connections.`,
    ...CURRENT_APP,
  }),
  'app.not_configured': (d) => ({
    status: 409,
    title: 'This Carta app is not configured',
    message:
      d.name === null
        ? 'The app this sign-in started with is gone.'
        : `"${d.name}" is no longer declared in the apps file.`,
  }),
  'grant.nothing_to_revoke': () => ({
    status: 409,
    title: 'Nothing to revoke',
    message: 'This user has no active grant: it was already revoked or replaced.',
  }),
  'grant.reconnect_required': () => ({
    status: 409,
    title: 'Reconnect to Carta',
    message:
      'Your connection to Carta has ended (it was revoked or expired). Connect again to keep using Scope Ledger.',
    retryHref: '/carta/connect',
    retryLabel: 'Reconnect to Carta',
    reconnect: true,
  }),
  'carta.unavailable': () => ({
    status: 503,
    title: 'Carta is not answering',
    message: 'Carta could not be reached just now. Your connection is fine: please try again in a minute.',
  }),
  'carta.bad_answer': () => ({
    status: 502,
    title: 'Carta gave an unexpected answer',
    message: 'Carta answered in a way we could not use. Your connection is unchanged: please try again later.',
  }),
  'carta.not_found': (d) => ({
    status: 404,
    title: 'Not found on Carta',
    // End users read "company"; the log keeps Carta's resource name.
    message: `Carta has no such company for your account: it found no ${d.resource.replace(/\bissuer\b/g, 'company')} at the address we asked for.`,
    ...TO_COMPANIES,
  }),
  'carta.access_restricted': (d) => ({
    status: 403,
    title: 'Carta did not let you see this',
    message:
      d.reason === 'ACCESS_TO_RESOURCE_RESTRICTED'
        ? 'You did not give this integration access to this company on Carta. Ask to connect again and include it.'
        : 'Your role on Carta does not allow this. Ask an administrator of the company on Carta.',
    ...TO_COMPANIES,
  }),
  'feature.not_requestable': (d) => ({
    status: 409,
    title: 'Not available yet',
    message: `This integration cannot ask for this permission yet: ${d.missing.map(describeScope).join(' ')}`,
  }),
  'lacking.unknown_scope': (d) => ({
    status: 400,
    title: 'Unknown scope',
    message: `"${d.scope}" is not one of this rollout's required scopes.`,
  }),
  'lacking.unknown_app': () => ({
    status: 400,
    title: 'Unknown app',
    message: 'The app filter must name one of the listed apps.',
  }),
  'lacking.bad_cursor': () => ({
    status: 400,
    title: 'Bad page cursor',
    message: 'This page link is malformed or belongs to another sort order. Start again from the first page.',
  }),
  'link.tampered': () => ({
    status: 404,
    title: 'This link is not valid',
    message:
      'The address may be cut short or mistyped. Open the link exactly as you received it, or ask for a new one.',
  }),
  'link.expired': (d) => ({
    status: 410,
    title: 'This link has expired — ask for a new one',
    message: `Links work for ${d.ttlDays} days. Ask whoever sent it for a new link.`,
  }),
  'link.used': () => ({
    status: 410,
    title: 'This link has already been used',
    message: 'Each link works once. If you are still asked to update your permissions, ask for a new link.',
  }),
  'link.archived': () => ({
    status: 410,
    title: 'This link is no longer needed',
    message: 'The permission update it was sent for has ended. There is nothing more to do.',
  }),
  'link.app_unavailable': () => ({
    status: 409,
    title: 'This link cannot be used right now',
    message: 'The Carta app it points to is no longer accepting connections. Ask for a new link.',
  }),
  'link.revoked': () => ({
    status: 410,
    title: 'This link was withdrawn',
    message:
      'Whoever sent it replaced or withdrew it. If you are still asked to update your permissions, ask for a new link.',
  }),
  'link.not_found': () => ({
    status: 404,
    title: 'Link not found',
    message: 'There is no such link in this rollout.',
  }),
  'mail.not_configured': () => ({
    status: 409,
    title: 'Email is not set up',
    message: 'Set SMTP_URL and MAIL_FROM (see the README, "Email") to send links by email.',
  }),
  'mail.campaign_not_found': () => ({
    status: 404,
    title: 'Campaign not found',
    message: 'There is no email campaign with this id in this rollout.',
  }),
  'mail.bad_selection': (_d, message) => ({ status: 400, title: 'Nobody to email', message }),
  'mail.bad_unsubscribe': () => ({
    status: 404,
    title: 'This unsubscribe link is not valid',
    message: 'The address may be cut short or mistyped. Open it exactly as it appears in the email.',
  }),
  'import.upload_invalid': (d) => ({
    status: 400,
    title: 'This file cannot be imported',
    message: `${d.reason} Nothing was imported.`,
    ...TO_IMPORTS,
  }),
  'import.upload_too_large': (d) => ({
    status: 413,
    title: 'The file is too large',
    message: `Uploads are limited to ${formatBytes(d.maxBytes)} (IMPORT_UPLOAD_MAX_BYTES). Nothing was imported. Split the file, or import it with the command line (npm run cli -- import-grants), which has no limit.`,
    ...TO_IMPORTS,
  }),
  'import.run_not_found': () => ({
    status: 404,
    title: 'Import run not found',
    message: 'There is no import run with this id.',
    ...TO_IMPORTS,
  }),
  'connect.bad_scopes': (d) => ({
    status: 409,
    title: 'This connection cannot start',
    message: `The app "${d.app}" cannot request ${d.outside.length ? d.outside.join(', ') : 'an empty set of permissions'}.`,
  }),
  'connect.no_state': (d) => ({
    status: 400,
    title: 'This sign-in cannot be completed',
    message: 'The answer from Carta carries no state. Please start again.',
    ...retryOf(d),
  }),
  'connect.state_rejected': (d) => ({
    status: 400,
    title: 'This sign-in link is no longer valid',
    message:
      'It was already used, has expired (after 10 minutes), or was started in another browser. Please start again.',
    ...retryOf(d),
  }),
  'connect.no_code': (d) => ({
    status: 400,
    title: 'This sign-in cannot be completed',
    message: 'The answer from Carta carries no authorization code.',
    ...retryOf(d),
  }),
  'connect.declined': (d) => ({
    status: 403,
    title: 'You declined the connection',
    message:
      'You declined to give Scope Ledger access to your Carta account, so nothing was connected. You can try again whenever you like.',
    ...retryOf(d),
  }),
  'connect.carta_error': (d) => ({
    status: 502,
    title: 'Carta could not authorize the connection',
    message: `Carta answered with the error "${d.error}". Nothing was connected.`,
    ...retryOf(d),
  }),
  'connect.code_refused': (d) => ({
    status: 400,
    title: 'Carta did not accept this sign-in',
    message:
      'The authorization code was refused by Carta (invalid_grant): it may have expired or been used already. Please connect again.',
    ...retryOf(d),
  }),
  'connect.token_refused': (d) => ({
    status: 502,
    title: 'Carta refused the connection',
    message: `Carta answered the token request with the error "${d.error}". Nothing was recorded.`,
    ...retryOf(d),
  }),
  'connect.carta_timeout': (d) => ({
    status: 504,
    title: 'Carta did not answer in time',
    message: 'Carta took too long to answer, so nothing was recorded. Please try again in a moment.',
    ...retryOf(d),
  }),
  'connect.carta_unavailable': (d) => ({
    status: 502,
    title: 'Carta is unavailable',
    message: `Carta could not complete the sign-in (${d.detail}). Nothing was recorded; please try again in a moment.`,
    ...retryOf(d),
  }),
  'connect.carta_malformed': (d) => ({
    status: 502,
    title: 'Carta sent an answer we could not read',
    message: 'The token answer from Carta was not a valid OAuth response, so nothing was recorded.',
    ...retryOf(d),
  }),
  'connect.unrequested_scope': (d) => ({
    status: 502,
    title: 'Carta granted a permission we did not ask for',
    message: `Carta's answer included ${d.scopes.join(', ')}, which Scope Ledger did not request. Nothing was recorded.`,
    ...retryOf(d),
  }),
  'connect.user_unknown': (d) => ({
    status: d.timeout ? 504 : 502,
    title: 'Carta did not tell us who you are',
    message: 'Reading your Carta profile failed, so nothing was recorded. Please try again in a moment.',
    ...retryOf(d),
  }),
  'connect.identity_mismatch': () => ({
    status: 403,
    title: 'You are signed in to Carta as a different person',
    message:
      'This link was made for someone else’s Carta account, so nothing was changed. Sign out of Carta, then open the link again and sign in as the person it was sent to.',
  }),
  'connect.link_unavailable': () => ({
    status: 410,
    title: 'This link has already been used or has expired',
    message: 'Ask the team that sent it for a new one. Nothing was changed.',
  }),
  'report.not_run': () => ({ status: 409, title: 'Report not run', message: 'That run is already recorded.' }),
  'report.not_found': () => ({
    status: 404,
    title: 'Report not found',
    message: 'There is no report file at this address.',
    ...TO_REPORTS,
  }),
  'report.unavailable': (d) => ({
    status: 404,
    title: 'No report for this run',
    message: `Run ${d.runId} ${d.status === 'failed' ? `failed: ${d.error ?? 'unknown error'}` : 'is still running'}.`,
    ...TO_REPORTS,
  }),
  'api.unauthorized': () => ({
    status: 401,
    title: 'API key required',
    message: 'Send a valid, unrevoked API key as "Authorization: Bearer <key>".',
  }),
  'api.forbidden': (d) => ({
    status: 403,
    title: 'Permission missing',
    message: `This API key does not hold the "${d.permission}" permission.`,
  }),
  'api.user_not_found': () => ({ status: 404, title: 'User not found', message: 'There is no end user with this id.' }),
  'api.reconnect_required': () => ({
    status: 409,
    title: 'Reconnect to Carta',
    message: 'The user has no usable grant (it broke or was revoked): they must connect again.',
  }),
  'api_key.invalid': (_d, message) => ({ status: 400, title: 'Invalid API key', message, ...TO_API_KEYS }),
  'api_key.not_found': () => ({
    status: 404,
    title: 'API key not found',
    message: 'There is no API key with this id.',
    ...TO_API_KEYS,
  }),
  'webhook.invalid': (_d, message) => ({ status: 400, title: 'Invalid webhook endpoint', message, ...TO_WEBHOOKS }),
  'webhook.not_found': () => ({
    status: 404,
    title: 'Webhook endpoint not found',
    message: 'There is no webhook endpoint or delivery with this id.',
    ...TO_WEBHOOKS,
  }),
  'connect_session.bad_return': (d) => ({
    status: 400,
    title: 'returnTo not allowed',
    message: `returnTo must be under an origin listed in API_ALLOWED_RETURN_ORIGINS (got ${d.origin.slice(0, 100)}).`,
  }),
  'connect_session.unavailable': (d) => ({
    status: d.reason === 'unknown' ? 404 : 410,
    title: 'This connection link is not valid',
    message:
      d.reason === 'unknown'
        ? 'The address may be cut short or mistyped. Go back to the product that sent you and try again.'
        : 'Each connection link works once and for a short time. Go back to the product that sent you and try again.',
  }),
  'connect_session.external_taken': () => ({
    status: 409,
    title: 'Already connected as someone else',
    message:
      'This Carta account or this product account is already tied to another person, so nothing was changed. Go back to the product that sent you.',
  }),
}

/** Where an operator page's error leads back to when its entry names no place. */
function operatorBack(path: string): Partial<ErrorPage> {
  if (path.startsWith('/admin/audit')) return TO_AUDIT
  return { backHref: '/admin', backLabel: 'Back to the dashboard' }
}

/** The page for a domain error at `path`. */
export function errorPage(err: DomainError, path: string): ErrorPage {
  // PAGES[code] takes ErrorDetails[code]; TypeScript cannot pair the two through the union.
  const pageFor = PAGES[err.code] as PageFor<ErrorCode>
  const page = pageFor(err.details, err.message)
  return page.backHref === undefined && path.startsWith('/admin') ? { ...page, ...operatorBack(path) } : page
}
