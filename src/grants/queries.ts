// Read side of the ledger for the end user's home page: who is connected, with which grant,
// and the one Carta call the page makes (issuers), behind a single function.
import { CartaApiError, type CartaIssuer, listIssuers } from '../carta/api.js'
import type { Db } from '../db/index.js'
import type { GrantStatus, ScopeSource } from '../db/schema.js'
import { parseScopes } from '../scopes.js'
import { isDomainError } from '../errors.js'
import { type AccessDeps, withAccessToken } from './access.js'

export interface HomeGrant {
  userId: number
  cartaUserId: string | null
  email: string | null
  name: string | null
  userStatus: 'connected' | 'needs_reconnect'
  grant: {
    id: number
    status: GrantStatus
    requested: string[]
    granted: string[]
    source: ScopeSource
    createdAt: number
  } | null
  app: { id: number; key: string; name: string; environment: string; scopes: string[]; status: string } | null
}

/** The user and their active grant (or, if none is active, their latest one). */
export async function homeGrant(db: Db, userId: number): Promise<HomeGrant | undefined> {
  const user = await db.selectFrom('end_users').selectAll().where('id', '=', userId).executeTakeFirst()
  if (!user) return undefined
  let query = db
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select([
      'grants.id',
      'grants.status',
      'grants.requested_scopes',
      'grants.granted_scopes',
      'grants.scopes_source',
      'grants.created_at',
      'oauth_apps.id as app_id',
      'oauth_apps.key as app_key',
      'oauth_apps.name as app_name',
      'oauth_apps.environment as app_environment',
      'oauth_apps.scopes as app_scopes',
      'oauth_apps.status as app_status',
    ])
  query =
    user.active_grant_id !== null
      ? query.where('grants.id', '=', user.active_grant_id)
      : query.where('grants.user_id', '=', userId).orderBy('grants.id', 'desc').limit(1)
  const row = await query.executeTakeFirst()
  return {
    userId: user.id,
    cartaUserId: user.carta_user_id,
    email: user.email,
    name: user.name,
    userStatus: user.status,
    grant: row
      ? {
          id: row.id,
          status: row.status,
          requested: parseScopes(row.requested_scopes),
          granted: parseScopes(row.granted_scopes),
          source: row.scopes_source,
          createdAt: row.created_at,
        }
      : null,
    app: row
      ? {
          id: row.app_id,
          key: row.app_key,
          name: row.app_name,
          environment: row.app_environment,
          scopes: parseScopes(row.app_scopes),
          status: row.app_status,
        }
      : null,
  }
}

export type IssuersResult =
  | { status: 'ok'; issuers: CartaIssuer[] }
  | { status: 'not_held' }
  | { status: 'unavailable'; message: string }
  | { status: 'reconnect' }

/**
 * The issuers the grant's token can see (GET /v1alpha1/issuers, scope read_issuer_info), refreshing
 * the access token first when needed (withAccessToken). Never throws for a Carta failure: the
 * page renders a notice instead.
 */
export async function issuersForGrant(
  deps: AccessDeps,
  grant: { id: number; granted: string[] },
): Promise<IssuersResult> {
  if (!grant.granted.includes('read_issuer_info')) return { status: 'not_held' }
  try {
    const issuers = await withAccessToken(deps, grant.id, (token, ctx) =>
      listIssuers(ctx.app, token, {
        timeoutMs: deps.config.cartaTimeoutMs,
        ...(deps.metrics ? { observe: deps.metrics.observeCarta } : {}),
      }),
    )
    return { status: 'ok', issuers }
  } catch (err) {
    const reason = err instanceof CartaApiError ? `${err.kind}: ${err.message}` : (err as Error).message
    deps.log?.warn({ grantId: grant.id, reason }, 'issuer list unavailable')
    if (isDomainError(err, 'grant.reconnect_required')) return { status: 'reconnect' }
    if (err instanceof CartaApiError && err.kind === 'forbidden')
      return { status: 'unavailable', message: 'Carta says this connection may not list your companies.' }
    return {
      status: 'unavailable',
      message: 'Carta could not list your companies just now. Please reload the page in a minute.',
    }
  }
}

/** Active grants per app id (index grants_app_status). */
export async function activeGrantsByApp(db: Db): Promise<Map<number, number>> {
  const rows = await db
    .selectFrom('grants')
    .select((eb) => ['app_id', eb.fn.countAll().as('n')])
    .where('status', '=', 'active')
    .groupBy('app_id')
    .execute()
  return new Map(rows.map((r) => [r.app_id, Number(r.n)]))
}

/** The scopes of the user's active grant, sorted (none when the user has no active grant). */
export async function heldScopes(db: Db, userId: number): Promise<string[]> {
  const rows = await db
    .selectFrom('end_users as u')
    .innerJoin('grant_scopes as s', 's.grant_id', 'u.active_grant_id')
    .select('s.scope')
    .where('u.id', '=', userId)
    .execute()
  return parseScopes(rows.map((r) => r.scope).join(' '))
}

/** Active grants per app key and scope source (reported by Carta, or assumed as requested): a metric. */
export async function activeGrantsByAppAndSource(
  db: Db,
): Promise<Array<{ appKey: string; source: string; count: number }>> {
  const rows = await db
    .selectFrom('grants')
    .innerJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select((eb) => ['oauth_apps.key as app_key', 'grants.scopes_source', eb.fn.countAll().as('n')])
    .where('grants.status', '=', 'active')
    .groupBy(['oauth_apps.key', 'grants.scopes_source'])
    .execute()
  return rows.map((r) => ({ appKey: r.app_key, source: r.scopes_source, count: Number(r.n) }))
}
