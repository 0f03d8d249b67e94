// Feature pages behind scope gates: the issuer list (read_issuer_info) and an issuer's cap table
// summary (read_issuer_capitalizationtablesummary), both read from Carta with the user's token
// (refreshed when needed, src/grants/access.ts). A 403 from Carta is shown as the gate page.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { appScopes, currentApp } from '../carta/apps.js'
import type { CartaAppConfig } from '../config.js'
import { CartaApiError, fetchCapTableSummary, INSUFFICIENT_SCOPE, listIssuers } from '../carta/api.js'
import { beginAuthorization } from '../carta/flow.js'
import { CartaUnavailableError, ReconnectRequiredError, withAccessToken } from '../grants/access.js'
import { missingScopes, parseScopes } from '../scopes.js'
import { PageError, renderPage } from '../web/render.js'
import { describeScope, findFeature, type Feature } from './catalog.js'
import { loadUserGrant, renderGate, renderReconnect, requireFeature } from './gate.js'

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
    if (err instanceof ReconnectRequiredError)
      return { ok: false, reply: await renderReconnect(request, reply, access.environment) }
    if (err instanceof CartaApiError) {
      if (err.kind === 'forbidden' && err.details.reason && err.details.reason !== INSUFFICIENT_SCOPE) {
        // ACCESS_TO_RESOURCE_RESTRICTED / MISSING_INTERNAL_PERMISSION: about this company or the
        // person's Carta role, not a missing scope (https://docs.carta.com/carta/docs/error-codes).
        request.log.warn(
          { grantId: access.grantId, feature: access.feature.key, reason: err.details.reason, path: err.details.path },
          'Carta refused access to the resource',
        )
        throw new PageError(
          403,
          'Carta did not let you see this',
          err.details.reason === 'ACCESS_TO_RESOURCE_RESTRICTED'
            ? 'You did not give this integration access to this company on Carta. Ask to connect again and include it.'
            : 'Your role on Carta does not allow this. Ask an administrator of the company on Carta.',
          { backHref: '/features/issuers', backLabel: 'Back to your companies' },
        )
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
        throw new PageError(
          404,
          'Not found on Carta',
          // End users read "company"; the log above keeps Carta's resource name.
          `Carta has no such company for your account: it found no ${resource.replace(/\bissuer\b/g, 'company')} at the address we asked for.`,
          { backHref: '/features/issuers', backLabel: 'Back to your companies' },
        )
      }
      if (err.kind === 'unavailable' || err.kind === 'rate_limited') throw new CartaUnavailableError(503, err.message)
      throw new CartaUnavailableError(502, err.message)
    }
    throw err
  }
}

export default async function featureRoutes(app: FastifyInstance): Promise<void> {
  const { config, db } = app.deps

  app.get('/features/issuers', { preHandler: requireFeature('issuers') }, async (request, reply) => {
    const result = await useCarta(request, reply, (token, cartaApp) =>
      listIssuers(cartaApp, token, { timeoutMs: config.cartaTimeoutMs }),
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

  app.get<{ Params: { issuerId: string } }>(
    '/features/issuers/:issuerId/cap-table',
    { preHandler: requireFeature('cap-table') },
    async (request, reply) => {
      const { issuerId } = request.params
      if (!ISSUER_ID.test(issuerId))
        throw new PageError(400, 'Invalid company id', 'That company id is not valid.', {
          backHref: '/features/issuers',
          backLabel: 'Back to your companies',
        })
      const result = await useCarta(request, reply, (token, cartaApp) =>
        fetchCapTableSummary(cartaApp, token, issuerId, { timeoutMs: config.cartaTimeoutMs }),
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
  app.post<{ Params: { key: string }; Body: { returnTo?: string } }>(
    '/features/:key/reauthorize',
    { preHandler: app.csrfProtection },
    async (request, reply) => {
      const feature: Feature | undefined = findFeature(request.params.key)
      if (!feature) throw new PageError(404, 'Unknown feature', 'There is no such feature.')
      const userId = request.session.endUserId
      const state = userId ? await loadUserGrant(db, userId) : undefined
      if (!state) return reply.redirect('/', 303)
      const target = await currentApp(db, state.environment ?? config.defaultEnvironment)
      if (!target)
        throw new PageError(
          409,
          'No Carta app is available',
          'No current Carta app is configured for your account. Please contact the operator.',
        )
      const lacking = missingScopes(feature.scopes, appScopes(target))
      if (lacking.length > 0) {
        throw new PageError(
          409,
          'Not available yet',
          `This integration cannot ask for this permission yet: ${lacking.map(describeScope).join(' ')}`,
        )
      }
      const requested = typeof request.body?.returnTo === 'string' ? request.body.returnTo : ''
      // Only our own feature pages; anything else (absolute URLs, //host) falls back to the feature.
      const returnTo =
        /^\/features\/[A-Za-z0-9_./:-]*$/.test(requested) && !requested.includes('..') ? requested : feature.path
      request.log.info({ userId, feature: feature.key, app: target.key }, 'reauthorizing for a feature')
      return beginAuthorization(request, reply, { app: target, scopes: appScopes(target), returnTo })
    },
  )
}
