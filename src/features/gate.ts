// requireFeature(key): the preHandler that stands in front of every feature page.
//  - no connected end user in this browser → back to the start page;
//  - grant broken or revoked → the reconnect page (409);
//  - a needed scope missing → the gate page (403) naming it in plain words, with a Reauthorize
//    button (never a raw 403 from Carta, DESIGN §3.3).
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Db } from '../db/index.js'
import { missingScopes, parseScopes } from '../scopes.js'
import { renderPage } from '../web/render.js'
import { currentApp } from '../carta/apps.js'
import { describeScope, type Feature, findFeature } from './catalog.js'

export interface FeatureAccess {
  feature: Feature
  userId: number
  grantId: number
  appId: number
  environment: 'playground' | 'production'
}

declare module 'fastify' {
  interface FastifyRequest {
    featureAccess?: FeatureAccess
  }
}

interface UserGrant {
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

/** The reconnect prompt: plain words and a button that starts a fresh connection. */
export async function renderReconnect(
  request: FastifyRequest,
  reply: FastifyReply,
  environment: 'playground' | 'production' | null,
): Promise<FastifyReply> {
  const { db, config } = request.server.deps
  const app = await currentApp(db, environment ?? config.defaultEnvironment)
  request.log.info({ userId: request.session.endUserId }, 'feature needs a reconnect')
  return renderPage(
    request,
    reply,
    'reconnect',
    {
      title: 'Reconnect to Carta',
      connectHref: app ? `/carta/connect?app=${encodeURIComponent(app.key)}` : '/carta/connect',
    },
    409,
  )
}

/** The gate page: which permissions are missing, in plain words, and the Reauthorize button. */
export async function renderGate(
  request: FastifyRequest,
  reply: FastifyReply,
  feature: Feature,
  missing: string[],
  returnTo: string,
): Promise<FastifyReply> {
  request.log.info(
    { userId: request.session.endUserId, feature: feature.key, missing },
    'feature gate: missing permission',
  )
  return renderPage(
    request,
    reply,
    'features/gate',
    {
      title: `${feature.title} needs your permission`,
      csrf: true,
      feature,
      missing: missing.map((scope) => ({ scope, words: describeScope(scope) })),
      returnTo,
    },
    403,
  )
}

export function requireFeature(featureKey: string) {
  const feature = findFeature(featureKey)
  if (!feature) throw new Error(`requireFeature: unknown feature "${featureKey}"`)
  return async function featureGate(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const userId = request.session.endUserId
    const state = userId ? await loadUserGrant(request.server.deps.db, userId) : undefined
    if (!state) return reply.redirect('/', 303)
    if (state.grantId === null || state.grantStatus !== 'active' || state.userStatus !== 'connected') {
      return renderReconnect(request, reply, state.environment)
    }
    const missing = missingScopes(feature.scopes, parseScopes(state.grantedScopes))
    if (missing.length > 0) return renderGate(request, reply, feature, missing, request.url)
    request.featureAccess = {
      feature,
      userId: state.userId,
      grantId: state.grantId,
      appId: state.appId!,
      environment: state.environment!,
    }
  }
}
