// Whether a user may use a feature (src/README.md, "Flows"): a connected user whose active
// grant holds every scope the feature needs. The HTTP layer turns each answer into a page.
import type { Db } from '../db/index.js'
import { missingScopes, parseScopes } from '../scopes.js'
import type { Feature } from './catalog.js'

export interface FeatureAccess {
  feature: Feature
  userId: number
  grantId: number
  appId: number
  environment: 'playground' | 'production'
}

export interface UserGrant {
  userId: number
  userStatus: string
  grantId: number | null
  grantStatus: string | null
  grantedScopes: string
  appId: number | null
  environment: 'playground' | 'production' | null
}

export async function loadUserGrant(db: Db, userId: number): Promise<UserGrant | undefined> {
  const row = await db
    .selectFrom('end_users')
    .leftJoin('grants', 'grants.id', 'end_users.active_grant_id')
    .leftJoin('oauth_apps', 'oauth_apps.id', 'grants.app_id')
    .select([
      'end_users.id as userId',
      'end_users.status as userStatus',
      'grants.id as grantId',
      'grants.status as grantStatus',
      'grants.granted_scopes as grantedScopes',
      'grants.app_id as appId',
      'oauth_apps.environment as environment',
    ])
    .where('end_users.id', '=', userId)
    .executeTakeFirst()
  return row ? { ...row, grantedScopes: row.grantedScopes ?? '' } : undefined
}

export type FeatureDecision =
  | { kind: 'no_user' }
  /** Grant broken, revoked or absent: the user must connect again. */
  | { kind: 'reconnect'; environment: 'playground' | 'production' | null }
  /** A needed scope is not held. */
  | { kind: 'missing'; missing: string[] }
  | { kind: 'allowed'; access: FeatureAccess }

/** May this user (if any) use the feature now? */
export async function checkFeature(db: Db, userId: number | undefined, feature: Feature): Promise<FeatureDecision> {
  const state = userId ? await loadUserGrant(db, userId) : undefined
  if (!state) return { kind: 'no_user' }
  if (state.grantId === null || state.grantStatus !== 'active' || state.userStatus !== 'connected')
    return { kind: 'reconnect', environment: state.environment }
  const missing = missingScopes(feature.scopes, parseScopes(state.grantedScopes))
  if (missing.length > 0) return { kind: 'missing', missing }
  return {
    kind: 'allowed',
    access: {
      feature,
      userId: state.userId,
      grantId: state.grantId,
      appId: state.appId!,
      environment: state.environment!,
    },
  }
}
