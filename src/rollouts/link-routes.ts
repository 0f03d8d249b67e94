// Reauthorization link routes. Public: the page a link opens and its one button (no operator
// session). Operator: issue one, issue in bulk for the rollout page's filter, export CSV, and a
// page per user's link.
import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { operatorActor, requireOperator } from '../admin/guard.js'
import { recordAudit } from '../audit/events.js'
import { appConfigFor, appScopes, findAppById } from '../carta/apps.js'
import { beginAuthorization } from '../carta/flow.js'
import { missingScopes, parseScopes } from '../scopes.js'
import { DomainError } from '../errors.js'
import { renderPage } from '../web/render.js'
import { type LackingFilter, filterQuery, listLacking, parseLackingFilter } from './lacking.js'
import { describeScopes } from './link-permissions.js'
import {
  type LinkRow,
  exportLinksCsv,
  issueLink,
  issueLinksBulk,
  latestLinks,
  linkContextFrom,
  linkState,
  resolveLink,
} from './links.js'

type TokenParams = { Params: { token: string } }
type RolloutParams = { Params: { id: string } }

export default async function reauthLinkRoutes(app: FastifyInstance): Promise<void> {
  const { config, db, clock } = app.deps
  const context = linkContextFrom(config, clock)
  const oauthLimit = { rateLimit: { max: config.rateLimits.oauthPerMinute, timeWindow: '1 minute' } }

  // --- public ------------------------------------------------------------------------------------

  app.get<TokenParams>('/reauthorize/:token', { config: oauthLimit }, async (request, reply) => {
    const { link, rollout } = await followLink(request)
    const target = await findAppById(db, rollout.app_id)
    if (!target) throw new Error(`the app of rollout ${rollout.id} is missing`)
    const requested = appScopes(target)
    const held = await heldScopes(link.user_id)
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

  app.post<TokenParams>(
    '/reauthorize/:token',
    { config: oauthLimit, preHandler: app.csrfProtection },
    async (request, reply) => {
      const { link, rollout } = await followLink(request)
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
    request: FastifyRequest<TokenParams>,
  ): Promise<{ link: LinkRow; rollout: { id: number; name: string; app_id: number } }> {
    const resolved = await resolveLink(db, config.linkSigningSecret, request.params.token, clock.now())
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

  async function heldScopes(userId: number): Promise<string[]> {
    const rows = await db
      .selectFrom('end_users as u')
      .innerJoin('grant_scopes as s', 's.grant_id', 'u.active_grant_id')
      .select('s.scope')
      .where('u.id', '=', userId)
      .execute()
    return parseScopes(rows.map((r) => r.scope).join(' '))
  }

  // --- operator ----------------------------------------------------------------------------------

  const operatorPost = { preHandler: [requireOperator, app.csrfProtection] }

  app.post<RolloutParams & { Body: { user_id?: string; return_to?: string } }>(
    '/admin/rollouts/:id/links',
    operatorPost,
    async (request, reply) => {
      const rolloutId = idParam(request.params.id)
      const userId = Number(request.body?.user_id)
      if (!Number.isSafeInteger(userId) || userId < 1)
        throw new DomainError('request.invalid', 'The form did not say which user the link is for.', {
          title: 'No user chosen',
        })
      const issued = await issueLink(db, context, { rolloutId, userId, issuedBy: operatorActor(request) })
      request.log.info(
        { rolloutId, userId, linkId: issued.link.id, reused: issued.reused },
        issued.reused ? 'reauthorization link reused' : 'reauthorization link issued',
      )
      if (request.body?.return_to === 'link') {
        return reply.redirect(
          `/admin/rollouts/${rolloutId}/links/${userId}?${issued.reused ? 'reused' : 'issued'}=1`,
          303,
        )
      }
      return reply.redirect(`/admin/rollouts/${rolloutId}?link=${userId}#user-${userId}`, 303)
    },
  )

  app.post<RolloutParams & { Body: Record<string, unknown> }>(
    '/admin/rollouts/:id/links/bulk',
    operatorPost,
    async (request, reply) => {
      const rolloutId = idParam(request.params.id)
      const filter = parseLackingFilter(request.body ?? {})
      const result = await issueLinksBulk(db, context, { rolloutId, filter, issuedBy: operatorActor(request) })
      request.log.info({ rolloutId, ...result }, 'reauthorization links issued in bulk')
      const query = filterQuery(filter)
      return renderPage(request, reply, 'admin/links-bulk', {
        title: 'Links issued',
        rolloutId,
        rolloutName: await rolloutName(rolloutId),
        result,
        filterText: await describeFilter(db, filter),
        backHref: `/admin/rollouts/${rolloutId}${query ? `?${query}` : ''}`,
        csvHref: `/admin/rollouts/${rolloutId}/links.csv${query ? `?${query}` : ''}`,
      })
    },
  )

  // A GET that issues links: the export must hand out a working link on every row. Issuing is
  // idempotent (outstanding links are reused) and the file only reaches the operator.
  app.get<RolloutParams & { Querystring: Record<string, unknown> }>(
    '/admin/rollouts/:id/links.csv',
    { preHandler: requireOperator },
    async (request, reply) => {
      const rolloutId = idParam(request.params.id)
      const filter = parseLackingFilter(request.query ?? {})
      const issuedBy = operatorActor(request)
      const rollout = await db
        .selectFrom('rollouts')
        .select(['id', 'status'])
        .where('id', '=', rolloutId)
        .executeTakeFirst()
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      if (rollout.status !== 'active')
        throw new DomainError('rollout.archived', 'An archived rollout issues no more links.', { rolloutId })
      // Refuse a bad filter (unknown scope or app) with a page, before the file starts streaming.
      await listLacking(db, rolloutId, filter, { limit: 1 })
      const out = new PassThrough()
      const write = async (chunk: string) => {
        if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve))
      }
      exportLinksCsv(db, context, { rolloutId, filter, issuedBy }, write).then(
        (result) => {
          request.log.info({ rolloutId, ...result }, 'reauthorization links exported')
          out.end()
        },
        (err: Error) => {
          request.log.error({ err, rolloutId }, 'link export failed')
          out.destroy(err)
        },
      )
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="rollout-${rolloutId}-links-${isoDate(clock.now())}.csv"`)
        .header('cache-control', 'no-store')
        .send(out)
    },
  )

  app.get<{ Params: { id: string; userId: string }; Querystring: { issued?: string; reused?: string } }>(
    '/admin/rollouts/:id/links/:userId',
    { preHandler: requireOperator },
    async (request, reply) => {
      const rolloutId = idParam(request.params.id)
      const userId = idParam(request.params.userId)
      const rollout = await db
        .selectFrom('rollouts')
        .select(['id', 'name', 'status'])
        .where('id', '=', rolloutId)
        .executeTakeFirst()
      const user = await db
        .selectFrom('end_users')
        .select(['id', 'carta_user_id', 'email', 'name'])
        .where('id', '=', userId)
        .executeTakeFirst()
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      if (!user) throw new DomainError('user.not_found', `There is no end user ${userId}.`, { userId })
      const member = await db
        .selectFrom('rollout_members')
        .select(['state', 'missing_scopes'])
        .where('rollout_id', '=', rolloutId)
        .where('user_id', '=', userId)
        .executeTakeFirst()
      const links = await db
        .selectFrom('reauth_links')
        .selectAll()
        .where('rollout_id', '=', rolloutId)
        .where('user_id', '=', userId)
        .orderBy('id', 'desc')
        .limit(20)
        .execute()
      const now = clock.now()
      const latest = (await latestLinks(db, rolloutId, [userId], context)).get(userId) ?? null
      return renderPage(request, reply, 'admin/link', {
        title: `Link for ${user.email ?? user.carta_user_id ?? `user ${user.id}`}`,
        rollout,
        user,
        member: member ? { state: member.state, missing: parseScopes(member.missing_scopes) } : null,
        latest,
        links: links.map((l) => ({
          id: l.id,
          state: linkState(l, now),
          issuedAt: isoTime(l.issued_at),
          expiresAt: isoTime(l.expires_at),
          usedAt: l.used_at ? isoTime(l.used_at) : null,
          issuedBy: l.issued_by,
        })),
        latestExpires: latest ? isoTime(latest.expiresAt) : null,
        notice: request.query.reused ? 'reused' : request.query.issued ? 'issued' : null,
        ttlDays: config.linkTtlDays,
      })
    },
  )

  async function rolloutName(id: number): Promise<string> {
    const row = await db.selectFrom('rollouts').select('name').where('id', '=', id).executeTakeFirst()
    return row?.name ?? `Rollout ${id}`
  }
}

function idParam(value: string): number {
  if (!/^\d{1,12}$/.test(value) || Number(value) < 1)
    throw new DomainError('request.not_found', `not an id: ${value.slice(0, 20)}`, {})
  return Number(value)
}

async function describeFilter(db: FastifyInstance['deps']['db'], filter: LackingFilter): Promise<string> {
  const parts: string[] = []
  if (filter.scope) parts.push(`missing ${filter.scope}`)
  if (filter.appId !== undefined) {
    const row = await db.selectFrom('oauth_apps').select('name').where('id', '=', filter.appId).executeTakeFirst()
    parts.push(`on ${row?.name ?? `app ${filter.appId}`}`)
  }
  if (filter.search) parts.push(`matching "${filter.search}"`)
  return parts.length ? `Users ${parts.join(', ')}` : 'Every user needing action'
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

function isoTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`
}
