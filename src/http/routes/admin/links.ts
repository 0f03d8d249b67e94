// An operator's reauthorization links for a rollout: issue one (or hand back the open one),
// issue for everyone the rollout page's filter lists, export them as CSV, and one user's link page.
import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Db } from '../../../db/index.js'
import { DomainError } from '../../../errors.js'
import { type LackingFilter, filterQuery, listLacking, parseLackingFilter } from '../../../rollouts/lacking.js'
import {
  exportLinksCsv,
  issueLink,
  issueLinksBulk,
  latestLinks,
  linkContextFrom,
  linkState,
} from '../../../rollouts/links.js'
import { parseScopes } from '../../../scopes.js'
import { formatTime, isoDate } from '../../../time.js'
import { renderPage } from '../../render.js'
import { operatorActor } from './access.js'

type RolloutParams = { Params: { id: string } }

export default async function links(app: FastifyInstance): Promise<void> {
  const { config, db, clock } = app.deps
  const context = linkContextFrom(config, clock)
  const csrf = { preHandler: app.csrfProtection }

  app.post<RolloutParams & { Body: { user_id?: string; return_to?: string } }>(
    '/rollouts/:id/links',
    csrf,
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
    '/rollouts/:id/links/bulk',
    csrf,
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
    '/rollouts/:id/links.csv',
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
    '/rollouts/:id/links/:userId',
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
          issuedAt: formatTime(l.issued_at),
          expiresAt: formatTime(l.expires_at),
          usedAt: l.used_at ? formatTime(l.used_at) : null,
          issuedBy: l.issued_by,
        })),
        latestExpires: latest ? formatTime(latest.expiresAt) : null,
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

async function describeFilter(db: Db, filter: LackingFilter): Promise<string> {
  const parts: string[] = []
  if (filter.scope) parts.push(`missing ${filter.scope}`)
  if (filter.appId !== undefined) {
    const row = await db.selectFrom('oauth_apps').select('name').where('id', '=', filter.appId).executeTakeFirst()
    parts.push(`on ${row?.name ?? `app ${filter.appId}`}`)
  }
  if (filter.search) parts.push(`matching "${filter.search}"`)
  return parts.length ? `Users ${parts.join(', ')}` : 'Every user needing action'
}
