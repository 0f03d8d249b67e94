// Data for the operator's user pages: identity, active grant, full grant history, rollout
// memberships, reauthorization links and recent audit events; and the revoke page's summary.
// Every query is by an indexed user id (grants_user, reauth_links_user, audit_events_user,
// rollout_members primary key).
import type { Kysely } from 'kysely'
import type { Database, ScopeSource } from '../db/schema.js'
import { DomainError } from '../errors.js'
import { parseScopes } from '../scopes.js'

export interface UserPageData {
  user: {
    id: number
    cartaUserId: string | null
    localKey: string | null
    email: string | null
    name: string | null
    status: string
    activeGrantId: number | null
    createdAt: number
    updatedAt: number
  }
  grants: Array<{
    id: number
    appId: number
    appKey: string
    appName: string
    appStatus: string
    requested: string[]
    granted: string[]
    source: ScopeSource
    /** The import run that recorded it, null when connected through Scope Ledger. */
    importRunId: number | null
    /** Whether Scope Ledger holds its tokens (an import may bring none): refresh, probe, revoke. */
    hasTokens: boolean
    status: string
    statusReason: string | null
    createdAt: number
    endedAt: number | null
    active: boolean
  }>
  memberships: Array<{
    rolloutId: number
    rolloutName: string
    state: string
    reason: string | null
    missing: string[]
  }>
  links: Array<{
    id: number
    rolloutId: number
    rolloutName: string
    issuedBy: string
    issuedAt: number
    expiresAt: number
    usedAt: number | null
    state: 'sent' | 'used' | 'expired'
  }>
  audit: Array<{ id: number; at: number; type: string; actor: string; details: string }>
  /** Scope discovery's answers for the active grant (src/imports/discovery.ts), newest attempt. */
  discovery: {
    status: string
    evidence: Array<{
      scope: string
      outcome: string
      status: number | null
      endpoint: string | null
      reason?: string
      at: number
    }>
  } | null
}

export const USER_PAGE_AUDIT_LIMIT = 50
export const USER_PAGE_GRANT_LIMIT = 200

export async function userPageData(db: Kysely<Database>, userId: number, now: number): Promise<UserPageData | null> {
  const u = await db.selectFrom('end_users').selectAll().where('id', '=', userId).executeTakeFirst()
  if (!u) return null
  const grants = await db
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .selectAll('grants')
    .select(['oauth_apps.key as app_key', 'oauth_apps.name as app_name', 'oauth_apps.status as app_status'])
    .where('grants.user_id', '=', userId)
    .orderBy('grants.id', 'desc')
    .limit(USER_PAGE_GRANT_LIMIT)
    .execute()
  const withTokens = new Set(
    grants.length
      ? (
          await db
            .selectFrom('grant_tokens')
            .select('grant_id')
            .where(
              'grant_id',
              'in',
              grants.map((g) => g.id),
            )
            .execute()
        ).map((r) => r.grant_id)
      : [],
  )
  const rollouts = await db
    .selectFrom('rollouts')
    .select(['id', 'name'])
    .where('status', '=', 'active')
    .orderBy('id', 'desc')
    .execute()
  const members = rollouts.length
    ? await db
        .selectFrom('rollout_members')
        .select(['rollout_id', 'state', 'reason', 'missing_scopes'])
        .where(
          'rollout_id',
          'in',
          rollouts.map((r) => r.id),
        )
        .where('user_id', '=', userId)
        .execute()
    : []
  const links = await db
    .selectFrom('reauth_links')
    .innerJoin('rollouts', 'rollouts.id', 'reauth_links.rollout_id')
    .select([
      'reauth_links.id',
      'reauth_links.rollout_id',
      'rollouts.name as rollout_name',
      'reauth_links.issued_by',
      'reauth_links.issued_at',
      'reauth_links.expires_at',
      'reauth_links.used_at',
    ])
    .where('reauth_links.user_id', '=', userId)
    .orderBy('reauth_links.id', 'desc')
    .limit(100)
    .execute()
  const discovery =
    u.active_grant_id === null
      ? undefined
      : await db
          .selectFrom('scope_discoveries')
          .select(['status', 'evidence'])
          .where('grant_id', '=', u.active_grant_id)
          .executeTakeFirst()
  const audit = await db
    .selectFrom('audit_events')
    .select(['id', 'at', 'type', 'actor', 'details'])
    .where('user_id', '=', userId)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(USER_PAGE_AUDIT_LIMIT)
    .execute()
  return {
    user: {
      id: u.id,
      cartaUserId: u.carta_user_id,
      localKey: u.local_key,
      email: u.email,
      name: u.name,
      status: u.status,
      activeGrantId: u.active_grant_id,
      createdAt: u.created_at,
      updatedAt: u.updated_at,
    },
    grants: grants.map((g) => ({
      id: g.id,
      appId: g.app_id,
      appKey: g.app_key,
      appName: g.app_name,
      appStatus: g.app_status,
      requested: parseScopes(g.requested_scopes),
      granted: parseScopes(g.granted_scopes),
      source: g.scopes_source,
      importRunId: g.import_run_id,
      hasTokens: withTokens.has(g.id),
      status: g.status,
      statusReason: g.status_reason,
      createdAt: g.created_at,
      endedAt: g.ended_at,
      active: g.status === 'active' && g.id === u.active_grant_id,
    })),
    memberships: rollouts.flatMap((r) => {
      const m = members.find((x) => x.rollout_id === r.id)
      return m
        ? [
            {
              rolloutId: r.id,
              rolloutName: r.name,
              state: m.state,
              reason: m.reason,
              missing: parseScopes(m.missing_scopes),
            },
          ]
        : []
    }),
    links: links.map((l) => ({
      id: l.id,
      rolloutId: l.rollout_id,
      rolloutName: l.rollout_name,
      issuedBy: l.issued_by,
      issuedAt: l.issued_at,
      expiresAt: l.expires_at,
      usedAt: l.used_at,
      state: l.used_at !== null ? 'used' : l.expires_at <= now ? 'expired' : 'sent',
    })),
    audit,
    discovery: discovery ? { status: discovery.status, evidence: JSON.parse(discovery.evidence) } : null,
  }
}

/** The revoke page's view of a user: identity, active grant and revocations still pending or failed. */
export async function revokeSummary(db: Kysely<Database>, userId: number) {
  const user = await db
    .selectFrom('end_users')
    .leftJoin('grants', 'grants.id', 'end_users.active_grant_id')
    .leftJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select([
      'end_users.id',
      'end_users.name',
      'end_users.email',
      'end_users.carta_user_id',
      'end_users.status',
      'grants.id as grant_id',
      'grants.status as grant_status',
      'grants.granted_scopes',
      'grants.created_at as granted_at',
      'oauth_apps.name as app_name',
    ])
    .where('end_users.id', '=', userId)
    .executeTakeFirst()
  if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
  const revocations = await db
    .selectFrom('token_revocations')
    .innerJoin('grants', 'grants.id', 'token_revocations.grant_id')
    .select([
      'token_revocations.id',
      'token_revocations.grant_id',
      'token_revocations.token_type_hint',
      'token_revocations.status',
      'token_revocations.attempts',
      'token_revocations.last_error',
      'token_revocations.next_attempt_at',
    ])
    .where('grants.user_id', '=', userId)
    .where('token_revocations.status', 'in', ['pending', 'failed'])
    .orderBy('token_revocations.id', 'desc')
    .limit(20)
    .execute()
  return { ...user, scopes: parseScopes(user.granted_scopes), revocations }
}
