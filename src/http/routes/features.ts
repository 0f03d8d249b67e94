// Feature pages behind scope gates: the issuer list (read_issuer_info) and an issuer's cap table
// summary (read_issuer_capitalizationtablesummary), both read from Carta with the user's token
// (refreshed when needed, src/grants/access.ts). requireFeature(key) stands in front of each:
//  - no connected end user in this browser → back to the start page;
//  - grant broken or revoked → the reconnect page (409);
//  - a needed scope missing → the gate page (403) naming it in plain words, with a Reauthorize
//    button — never a raw 403 from Carta (src/README.md, "Flows").
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { appScopes, currentApp } from '../../apps/apps.js'
import { CartaApiError, INSUFFICIENT_SCOPE, fetchCapTableSummary, listIssuers } from '../../carta/api.js'
import type { CartaAppConfig } from '../../config.js'
import { DomainError, isDomainError } from '../../errors.js'
import { type FeatureAccess, checkFeature, loadUserGrant } from '../../features/access.js'
import { FEATURES, type Feature, findFeature } from '../../features/catalog.js'
import { cartaFailure, withAccessToken } from '../../grants/access.js'
import { describeScope, missingScopes, parseScopes } from '../../scopes.js'
import { sendToCarta } from '../authorize.js'
import { localRedirect } from '../redirect.js'
import { renderPage } from '../render.js'
import { Text } from '../schemas.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireFeature for the feature's handler. */
    featureAccess?: FeatureAccess
  }
}

/** The reconnect prompt: plain words and a button that starts a fresh connection. */
async function renderReconnect(
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
async function renderGate(
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
    const decision = await checkFeature(request.server.deps.db, request.session.endUserId, feature)
    switch (decision.kind) {
      case 'no_user':
        return reply.redirect('/', 303)
      case 'reconnect':
        return renderReconnect(request, reply, decision.environment)
      case 'missing':
        return renderGate(request, reply, feature, decision.missing, request.url)
      case 'allowed':
        request.featureAccess = decision.access
    }
  }
}

const ISSUER_ID = /^[A-Za-z0-9_.:-]{1,128}$/

/** Runs a feature's Carta calls; maps the lifecycle outcomes to the right page. */
async function useCarta<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  fn: (token: string, app: CartaAppConfig) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; reply: FastifyReply }> {
  const access = request.featureAccess!
  const deps = { ...request.server.deps, log: request.log }
  try {
    return { ok: true, value: await withAccessToken(deps, access.grantId, (token, ctx) => fn(token, ctx.app)) }
  } catch (err) {
    if (isDomainError(err, 'grant.reconnect_required'))
      return { ok: false, reply: await renderReconnect(request, reply, access.environment) }
    if (err instanceof CartaApiError) {
      if (err.kind === 'forbidden' && err.details.reason && err.details.reason !== INSUFFICIENT_SCOPE) {
        // ACCESS_TO_RESOURCE_RESTRICTED / MISSING_INTERNAL_PERMISSION: about this company or the
        // person's Carta role, not a missing scope (https://docs.carta.com/carta/docs/error-codes).
        request.log.warn(
          { grantId: access.grantId, feature: access.feature.key, reason: err.details.reason, path: err.details.path },
          'Carta refused access to the resource',
        )
        throw new DomainError('carta.access_restricted', `Carta refused: ${err.details.reason}`, {
          reason: err.details.reason,
        })
      }
      if (err.kind === 'forbidden') {
        // Carta says the token lacks a permission our records say it holds (e.g. removed at
        // Carta): same gate page, never Carta's raw 403.
        request.log.warn(
          { grantId: access.grantId, feature: access.feature.key, scope: err.details.scope ?? null },
          'Carta answered 403 for a feature the grant should allow',
        )
        const named = parseScopes(err.details.scope).filter((s) => access.feature.scopes.includes(s))
        return {
          ok: false,
          reply: await renderGate(
            request,
            reply,
            access.feature,
            named.length ? named : access.feature.scopes,
            request.url,
          ),
        }
      }
      if (err.kind === 'not_found') {
        const resource = err.details.resource ?? 'resource'
        request.log.warn({ grantId: access.grantId, resource, path: err.details.path }, 'Carta answered 404')
        throw new DomainError('carta.not_found', `Carta found no ${resource}.`, { resource })
      }
      const unavailable = err.kind === 'unavailable' || err.kind === 'rate_limited'
      throw cartaFailure(unavailable ? 'unavailable' : 'bad_answer', err.message)
    }
    throw err
  }
}

const features: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps

  app.get('/features/issuers', { preHandler: requireFeature('issuers') }, async (request, reply) => {
    const result = await useCarta(request, reply, (token, cartaApp) =>
      listIssuers(cartaApp, token, { timeoutMs: config.cartaTimeoutMs, observe: app.deps.metrics.observeCarta }),
    )
    if (!result.ok) return result.reply
    const state = await loadUserGrant(db, request.featureAccess!.userId)
    const canSeeCapTable =
      missingScopes(findFeature('cap-table')!.scopes, parseScopes(state?.grantedScopes)).length === 0
    return renderPage(request, reply, 'features/issuers', {
      title: 'Your companies',
      issuers: result.value,
      canSeeCapTable,
    })
  })

  app.get(
    '/features/issuers/:issuerId/cap-table',
    { preHandler: requireFeature('cap-table'), schema: { params: Type.Object({ issuerId: Text(1000) }) } },
    async (request, reply) => {
      const { issuerId } = request.params
      if (!ISSUER_ID.test(issuerId))
        throw new DomainError('request.invalid', 'That company id is not valid.', { title: 'Invalid company id' })
      const result = await useCarta(request, reply, (token, cartaApp) =>
        fetchCapTableSummary(cartaApp, token, issuerId, {
          timeoutMs: config.cartaTimeoutMs,
          observe: app.deps.metrics.observeCarta,
        }),
      )
      if (!result.ok) return result.reply
      const table = result.value
      return renderPage(request, reply, 'features/cap-table', {
        title: `Cap table · ${table.issuerName ?? issuerId}`,
        issuerId,
        table,
      })
    },
  )

  // Reauthorize from the gate page: the CURRENT app of the user's environment, with all of that
  // app's scopes (Carta's advice: one consent for everything the integration now needs).
  const ReauthorizeSchema = {
    params: Type.Object({ key: Type.Enum(FEATURES.map((f) => f.key)) }),
    body: Type.Object({ returnTo: Type.Optional(Type.String({ maxLength: 2048 })) }),
  }
  app.post(
    '/features/:key/reauthorize',
    { preHandler: app.csrfProtection, schema: ReauthorizeSchema },
    async (request, reply) => {
      const feature = findFeature(request.params.key)!
      const userId = request.session.endUserId
      const state = userId ? await loadUserGrant(db, userId) : undefined
      if (!state) return reply.redirect('/', 303)
      const target = await currentApp(db, state.environment ?? config.defaultEnvironment)
      if (!target)
        throw new DomainError('app.no_current', 'No current Carta app for this environment.', {
          environment: state.environment ?? config.defaultEnvironment,
        })
      const lacking = missingScopes(feature.scopes, appScopes(target))
      if (lacking.length > 0) {
        throw new DomainError('feature.not_requestable', `The current app cannot request ${lacking.join(', ')}.`, {
          feature: feature.key,
          missing: lacking,
        })
      }
      const requested = request.body.returnTo ?? ''
      // Only our own feature pages; anything else (absolute URLs, //host) falls back to the feature.
      const returnTo = localRedirect(requested, { within: '/features/', fallback: feature.path })
      request.log.info({ userId, feature: feature.key, app: target.key }, 'reauthorizing for a feature')
      return sendToCarta(request, reply, { app: target, scopes: appScopes(target), returnTo })
    },
  )
}

export default features
