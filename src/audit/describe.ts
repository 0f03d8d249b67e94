// The audit trail in words, for the operator's page: who (by name), what it was about (people,
// apps and rollouts by name, so the page can link them) and each event's details as a sentence
// instead of raw JSON and epoch numbers. The stored rows stay as they are (the CSV keeps them).
import type { Db } from '../db/index.js'
import type { AuditEventType } from './events.js'
import type { AuditRow } from './queries.js'

export interface AuditNames {
  users: Map<number, { label: string }>
  apps: Map<number, { name: string }>
  appsByKey: Map<string, { name: string }>
  rollouts: Map<number, { name: string }>
}

/** Names of every user, app and rollout the rows mention (three indexed reads by primary key). */
export async function auditNames(db: Db, rows: AuditRow[]): Promise<AuditNames> {
  const ids = (pick: (r: AuditRow) => number | null) =>
    [...new Set(rows.map(pick).filter((v): v is number => v !== null))].map(Number)
  const userIds = [
    ...new Set([
      ...ids((r) => r.user_id),
      ...rows
        .map((r) => /^user:(\d{1,10})$/.exec(r.actor)?.[1])
        .filter(Boolean)
        .map(Number),
    ]),
  ]
  const rolloutIds = ids((r) => r.rollout_id)
  const [users, apps, rollouts] = await Promise.all([
    userIds.length
      ? db.selectFrom('end_users').select(['id', 'email', 'name', 'carta_user_id']).where('id', 'in', userIds).execute()
      : [],
    db.selectFrom('oauth_apps').select(['id', 'key', 'name']).execute(),
    rolloutIds.length ? db.selectFrom('rollouts').select(['id', 'name']).where('id', 'in', rolloutIds).execute() : [],
  ])
  return {
    users: new Map(
      users.map((u) => [
        u.id,
        { label: u.name || u.email || (u.carta_user_id ? `Carta ${u.carta_user_id}` : `User ${u.id}`) },
      ]),
    ),
    apps: new Map(apps.map((a) => [a.id, { name: a.name }])),
    appsByKey: new Map(apps.map((a) => [a.key, { name: a.name }])),
    rollouts: new Map(rollouts.map((r) => [r.id, { name: r.name }])),
  }
}

export const EVENT_LABELS: Record<AuditEventType, string> = {
  'grant.created': 'Connected',
  'grant.superseded': 'Connection replaced',
  'grant.refreshed': 'Token refreshed',
  'grant.scopes_changed': 'Permissions changed',
  'grant.broken': 'Connection broken',
  'grant.revoked_by_operator': 'Revoked by an operator',
  'token.revoked': 'Token revoked at Carta',
  'token.revocation_failed': 'Revocation at Carta failed',
  'link.issued': 'Link issued',
  'links.issued_bulk': 'Links issued in bulk',
  'links.exported': 'Links exported',
  'link.used': 'Link used',
  'link.rejected': 'Link refused',
  'link.identity_mismatch': 'Link used by someone else',
  'link.revoked': 'Link withdrawn',
  'mail.campaign_created': 'Email campaign started',
  'mail.campaign_paused': 'Email campaign paused',
  'mail.campaign_resumed': 'Email campaign resumed',
  'mail.opted_out': 'Opted out of email',
  'mail.failed': 'Email failed',
  'rollout.created': 'Rollout created',
  'rollout.archived': 'Rollout archived',
  'rollout.unarchived': 'Rollout unarchived',
  'app.retired': 'App retired',
  'app.successor_set': 'Successor chosen',
  'report.run': 'Report run',
  'grants.imported': 'Grants imported',
  'discovery.paused': 'Scope discovery paused',
  'discovery.resumed': 'Scope discovery resumed',
  'api_key.created': 'API key created',
  'api_key.revoked': 'API key revoked',
  'api.token_returned': 'Token given to the API',
  'api.link_issued': 'Link issued through the API',
  'api.connect_session_created': 'Connect session created',
  'webhook.endpoint_added': 'Webhook endpoint added',
  'webhook.endpoint_removed': 'Webhook endpoint removed',
  'webhook.endpoint_disabled': 'Webhook endpoint disabled',
  'webhook.endpoint_enabled': 'Webhook endpoint enabled',
  'webhook.redelivered': 'Webhook sent again',
  'access.refused': 'Access refused',
  'operator.created': 'Operator created',
  'operator.role_changed': 'Operator role changed',
  'operator.disabled': 'Operator disabled',
  'operator.enabled': 'Operator enabled',
  'operator.sign_in_refused': 'Operator sign-in refused',
}

/** Who did it, in words: an operator by name, the end user, or Scope Ledger itself. */
export function describeActor(actor: string, names: AuditNames): { text: string; userId: number | null } {
  const [kind, rest] = [actor.split(':')[0], actor.slice(actor.indexOf(':') + 1)]
  if (kind === 'operator') return { text: `${rest} (operator)`, userId: null }
  if (kind === 'user') {
    const id = Number(rest)
    return { text: names.users.get(id)?.label ?? `User ${id}`, userId: Number.isSafeInteger(id) ? id : null }
  }
  if (actor === 'system') return { text: 'Scope Ledger', userId: null }
  if (actor === 'anonymous') return { text: 'someone not signed in', userId: null }
  return { text: actor, userId: null }
}

const list = (v: unknown): string => {
  const items = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(' ').filter(Boolean) : []
  return items.length ? items.join(', ') : 'none'
}
const plural = (n: unknown, one: string, many = `${one}s`) => `${Number(n)} ${Number(n) === 1 ? one : many}`
const words = (v: unknown) => String(v).replace(/_/g, ' ').toLowerCase()

/**
 * One event's details as a sentence. `time` formats an epoch-ms instant in the operator's zone;
 * unknown fields (a type another module added later) are listed as "field: value".
 */
export function describeDetails(
  type: AuditEventType,
  details: Record<string, unknown>,
  names: AuditNames,
  time: (ms: number) => string,
): string {
  const d = details
  const appName = (id: unknown) => (typeof id === 'number' ? (names.apps.get(id)?.name ?? `app ${id}`) : null)
  switch (type) {
    case 'grant.created': {
      const app = typeof d.app === 'string' ? (names.appsByKey.get(d.app)?.name ?? d.app) : 'an app'
      const source = d.source === 'assumed' ? ' (Carta listed none, so everything requested)' : ''
      return `Granted ${list(d.granted)} through ${app}${source}.`
    }
    case 'grant.superseded':
      return `Replaced by a newer connection (grant ${d.supersededBy}); its tokens are revoked at Carta.`
    case 'grant.refreshed':
      return [
        `Access token renewed (version ${d.version}${typeof d.expiresAt === 'number' ? `, valid until ${time(d.expiresAt)}` : ''})`,
        d.refreshTokenRotated ? 'Carta rotated the refresh token' : null,
        d.scopeReported === false ? 'Carta did not list the scopes' : null,
      ]
        .filter(Boolean)
        .join('; ')
        .concat('.')
    case 'grant.scopes_changed':
      return `Carta now reports other permissions: added ${list(d.added)}; removed ${list(d.removed)}.`
    case 'grant.broken':
      return `Carta refused the refresh token (${words(d.reason ?? 'unknown')}); the user must reconnect.`
    case 'grant.revoked_by_operator':
      return `Revoked (it was ${words(d.previousStatus ?? 'active')}); ${plural(d.queuedRevocations ?? 0, 'token')} queued for revocation at Carta.`
    case 'token.revoked':
      return `The ${words(d.tokenType ?? 'token')} was revoked at Carta (${plural(d.attempts ?? 1, 'attempt')}).`
    case 'token.revocation_failed':
      return `Revoking the ${words(d.tokenType ?? 'token')} at Carta failed after ${plural(d.attempts ?? 0, 'attempt')}: ${d.lastError ?? 'no detail'}.`
    case 'link.issued':
      return `Reauthorization link ${d.linkId} issued${typeof d.expiresAt === 'number' ? `, valid until ${time(d.expiresAt)}` : ''}.`
    case 'links.issued_bulk':
      return `${plural(d.matched ?? 0, 'user')} matched: ${Number(d.issued ?? 0)} new, ${Number(d.reused ?? 0)} already open.`
    case 'links.exported':
      return `${plural(d.matched ?? d.rows ?? 0, 'user')} exported to CSV with their links.`
    case 'link.used':
      return `Reauthorization link ${d.linkId} used: the user reconnected.`
    case 'link.rejected':
      return `Link ${d.linkId ?? '(unknown)'} refused: ${words(d.reason ?? 'unknown')}.`
    case 'link.identity_mismatch':
      return `Link ${d.linkId} was followed, but the person signed in to Carta as someone else (${words(d.reason ?? 'another account')}); nothing was recorded.`
    case 'rollout.created':
      return `"${d.name}" created, requiring ${list(d.required_scopes)}.`
    case 'rollout.archived':
      return 'Archived: its figures are no longer kept up to date.'
    case 'rollout.unarchived':
      return 'Unarchived: its users are measured again.'
    case 'app.retired':
      return [
        'No new connection uses it',
        d.newCurrentAppId ? `${appName(d.newCurrentAppId)} is now current` : null,
        d.successorAppId ? `its users reconnect with ${appName(d.successorAppId)}` : null,
      ]
        .filter(Boolean)
        .join('; ')
        .concat('.')
    case 'app.successor_set':
      return `Its users reconnect with ${appName(d.successorAppId)}.`
    case 'report.run':
      return `Coverage report run ${d.runId}: ${words(d.status ?? 'unknown')}.`
    default:
      return Object.entries(d)
        .map(([k, v]) => `${words(k)}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        .join('; ')
  }
}
