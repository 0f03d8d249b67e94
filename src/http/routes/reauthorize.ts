// The page a reauthorization link opens (/reauthorize/<token>, no operator session) and its one
// button, which starts the Carta flow with the rollout's app. Refusals are audited and logged
// without the token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { appConfigFor, appScopes, findAppById } from '../../apps/apps.js'
import { recordAudit } from '../../audit/events.js'
import { beginAuthorization } from '../../carta/flow.js'
import { DomainError } from '../../errors.js'
import { heldScopes } from '../../grants/queries.js'
import { describeScopes } from '../../rollouts/link-permissions.js'
import { type LinkRow, resolveLink } from '../../rollouts/links.js'
import { missingScopes } from '../../scopes.js'
import { isoDate } from '../../time.js'
import { renderPage } from '../render.js'
import { Text } from '../schemas.js'

// Any token is looked at (and a refusal audited); resolveLink checks its shape and signature.
const TokenParams = Type.Object({ token: Text(1000) })

const reauthorize: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, clock } = app.deps
  const oauthLimit = { rateLimit: { max: config.rateLimits.oauthPerMinute, timeWindow: '1 minute' } }

  app.get('/reauthorize/:token', { config: oauthLimit, schema: { params: TokenParams } }, async (request, reply) => {
    const { link, rollout } = await followLink(request, request.params.token)
    const target = await findAppById(db, rollout.app_id)
    if (!target) throw new Error(`the app of rollout ${rollout.id} is missing`)
    const requested = appScopes(target)
    const held = await heldScopes(db, link.user_id)
    const added = missingScopes(requested, held)
    return renderPage(request, reply, 'reauthorize', {
      title: 'Update your Carta permissions',
      csrf: true,
      action: `/reauthorize/${request.params.token}`,
      rolloutName: rollout.name,
      added: describeScopes(added),
      kept: describeScopes(requested.filter((s) => !added.includes(s))),
      expiresOn: isoDate(link.expires_at),
    })
  })

  app.post(
    '/reauthorize/:token',
    { config: oauthLimit, preHandler: app.csrfProtection, schema: { params: TokenParams } },
    async (request, reply) => {
      const { link, rollout } = await followLink(request, request.params.token)
      const target = await findAppById(db, rollout.app_id)
      if (target?.status !== 'active' || !appConfigFor(config.apps, target)) {
        await refuse(request, 'app_unavailable', link)
      }
      request.log.info({ linkId: link.id, rolloutId: rollout.id }, 'reauthorization link followed')
      // The state is bound to this browser's session server-side (src/carta/states.ts), so the
      // callback only completes here; the callback consumes the link and checks the identity.
      return beginAuthorization(request, reply, {
        app: target!,
        scopes: appScopes(target!),
        linkId: link.id,
        expectedUserId: link.user_id,
        returnTo: '/?reauthorized=1',
      })
    },
  )

  /** The link behind the URL, or a refusal page (audited, logged without the token). */
  async function followLink(
    request: FastifyRequest,
    token: string,
  ): Promise<{ link: LinkRow; rollout: { id: number; name: string; app_id: number } }> {
    const resolved = await resolveLink(db, config.linkSigningSecret, token, clock.now())
    if (resolved.ok) return resolved
    if (resolved.reason === 'tampered') return refuse(request, 'tampered', null, resolved.linkId)
    return refuse(request, resolved.reason, resolved.link)
  }

  async function refuse(
    request: FastifyRequest,
    reason: string,
    link: LinkRow | null,
    claimedId: number | null = null,
  ): Promise<never> {
    const now = clock.now()
    await recordAudit(db, now, {
      type: 'link.rejected',
      actor: 'anonymous',
      userId: link?.user_id ?? null,
      rolloutId: link?.rollout_id ?? null,
      details: { reason, linkId: link?.id ?? claimedId, method: request.method },
    })
    request.log.warn({ reason, linkId: link?.id ?? claimedId }, 'reauthorization link refused')
    switch (reason) {
      case 'tampered':
        throw new DomainError('link.tampered', 'The link token is malformed or its signature is wrong.', {})
      case 'expired':
        throw new DomainError('link.expired', 'The link has expired.', { ttlDays: config.linkTtlDays })
      case 'used':
        throw new DomainError('link.used', 'The link was already used.', {})
      case 'archived':
        throw new DomainError('link.archived', "The link's rollout is archived.", {})
      default:
        throw new DomainError('link.app_unavailable', "The link's app accepts no connections.", {})
    }
  }
}

export default reauthorize
