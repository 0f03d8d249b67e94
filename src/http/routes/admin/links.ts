// An operator's reauthorization links for a rollout: issue one (or hand back the open one),
// issue for everyone the rollout page's filter lists, export them as CSV, and one user's link page.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Db } from '../../../db/index.js'
import { DomainError } from '../../../errors.js'
import { type LackingFilter, filterQuery, lackingFilter, listLacking } from '../../../rollouts/lacking.js'
import {
  OPEN_LINK_STATES,
  exportLinksCsv,
  issueLink,
  issueLinksBulk,
  linkContextFrom,
  readLinksCsv,
  userLinks,
} from '../../../links/links.js'
import { personFunnel } from '../../../mail/funnel.js'
import { findRollout } from '../../../rollouts/rollouts.js'
import { formatTime, isoDate } from '../../../time.js'
import { sendCsv } from '../../csv.js'
import { noStore, renderPage } from '../../render.js'
import { Id, IdParams, LackingFilterFields } from '../../schemas.js'
import { operatorActor } from './access.js'

const IssueBody = Type.Object({
  user_id: Id,
  /** 'link': come back to the user's link page instead of the rollout page. */
  return_to: Type.Optional(Type.Enum(['link'])),
})

const links: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, clock } = app.deps
  const context = linkContextFrom(config, clock)
  // Every route here hands out or issues links: operators (a viewer exports no links).
  const csrf = { config: { access: 'operator' as const }, preHandler: app.csrfProtection }
  const operator = { config: { access: 'operator' as const } }

  app.post(
    '/rollouts/:id/links',
    { ...csrf, schema: { params: IdParams, body: IssueBody } },
    async (request, reply) => {
      const rolloutId = request.params.id
      const userId = request.body.user_id
      const issued = await issueLink(db, context, { rolloutId, userId, issuedBy: operatorActor(request) })
      request.log.info(
        { rolloutId, userId, linkId: issued.link.id, reused: issued.reused },
        issued.reused ? 'reauthorization link reused' : 'reauthorization link issued',
      )
      if (request.body.return_to === 'link') {
        return reply.redirect(
          `/admin/rollouts/${rolloutId}/links/${userId}?${issued.reused ? 'reused' : 'issued'}=1`,
          303,
        )
      }
      return reply.redirect(`/admin/rollouts/${rolloutId}?link=${userId}#user-${userId}`, 303)
    },
  )

  app.post(
    '/rollouts/:id/links/bulk',
    { ...csrf, schema: { params: IdParams, body: Type.Object(LackingFilterFields) } },
    async (request, reply) => {
      const rolloutId = request.params.id
      const filter = lackingFilter(request.body)
      const result = await issueLinksBulk(db, context, { rolloutId, filter, issuedBy: operatorActor(request) })
      request.log.info({ rolloutId, ...result }, 'reauthorization links issued in bulk')
      const query = filterQuery(filter)
      return renderPage(request, reply, 'admin/links-bulk', {
        title: 'Links issued',
        rolloutId,
        rolloutName: (await findRollout(db, rolloutId))?.name ?? `Rollout ${rolloutId}`,
        result,
        filterText: await describeFilter(db, filter),
        backHref: `/admin/rollouts/${rolloutId}${query ? `?${query}` : ''}`,
        csvHref: `/admin/rollouts/${rolloutId}/links.csv${query ? `?${query}` : ''}`,
      })
    },
  )

  // The download only reads (RFC 9110 §9.2.1: a cross-site navigation must not issue links): the
  // users the filter lists with their outstanding links, empty where none is outstanding.
  app.get(
    '/rollouts/:id/links.csv',
    { ...operator, schema: { params: IdParams, querystring: Type.Object(LackingFilterFields) } },
    async (request, reply) => {
      const rolloutId = request.params.id
      const filter = lackingFilter(request.query)
      const rollout = await findRollout(db, rolloutId)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      // An archived rollout's links no longer reauthorize anything: nothing to hand out.
      if (rollout.status !== 'active')
        throw new DomainError('rollout.archived', 'An archived rollout issues no more links.', { rolloutId })
      // Refuse a bad filter (unknown scope or app) with a page, before the file starts streaming.
      await listLacking(db, rolloutId, filter, { limit: 1 })
      return sendCsv(
        request,
        reply,
        `rollout-${rolloutId}-links-${isoDate(clock.now())}.csv`,
        (write) => readLinksCsv(db, context, { rolloutId, filter }, write),
        (result) => request.log.info({ rolloutId, ...result }, 'reauthorization links downloaded'),
      )
    },
  )

  // Issuing the missing links, then the file with a working link on every row: a CSRF-protected
  // POST (the rollout page's form). Issuing is idempotent (outstanding links are reused).
  app.post(
    '/rollouts/:id/links.csv',
    {
      ...csrf,
      config: { access: 'operator' },
      schema: { params: IdParams, body: Type.Object(LackingFilterFields) },
    },
    async (request, reply) => {
      const rolloutId = request.params.id
      const filter = lackingFilter(request.body)
      const issuedBy = operatorActor(request)
      const rollout = await findRollout(db, rolloutId)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      if (rollout.status !== 'active')
        throw new DomainError('rollout.archived', 'An archived rollout issues no more links.', { rolloutId })
      await listLacking(db, rolloutId, filter, { limit: 1 })
      return sendCsv(
        request,
        reply,
        `rollout-${rolloutId}-links-${isoDate(clock.now())}.csv`,
        (write) => exportLinksCsv(db, context, { rolloutId, filter, issuedBy }, write),
        (result) => request.log.info({ rolloutId, ...result }, 'reauthorization links exported'),
      )
    },
  )

  app.get(
    '/rollouts/:id/links/:userId',
    {
      ...operator,
      schema: {
        params: Type.Object({ id: Id, userId: Id }),
        querystring: Type.Object({
          issued: Type.Optional(Type.Enum(['1'])),
          reused: Type.Optional(Type.Enum(['1'])),
          revoked: Type.Optional(Type.Enum(['0', '1'])),
        }),
      },
    },
    async (request, reply) => {
      noStore(reply) // the page shows the live link
      const { id: rolloutId, userId } = request.params
      const data = await userLinks(db, context, rolloutId, userId)
      const { user, latest } = data
      const mail = await personFunnel(db, rolloutId, userId)
      return renderPage(request, reply, 'admin/link', {
        title: `Link for ${user.email ?? user.carta_user_id ?? `user ${user.id}`}`,
        rollout: data.rollout,
        user,
        member: data.member,
        latest,
        links: data.links.map((l) => ({
          id: l.id,
          state: l.state,
          issuedAt: formatTime(l.issued_at),
          expiresAt: formatTime(l.expires_at),
          usedAt: l.used_at ? formatTime(l.used_at) : null,
          issuedBy: l.issued_by,
          // What is known of this link, oldest first (the person's funnel).
          facts: [
            l.emailed_at ? `emailed ${formatTime(l.emailed_at)}` : null,
            l.opened_at ? `opened ${formatTime(l.opened_at)}` : null,
            l.continued_at ? `continued to Carta ${formatTime(l.continued_at)}` : null,
            l.outcome === 'declined' ? `declined at Carta ${formatTime(l.outcome_at)}` : null,
            l.outcome === 'identity_mismatch' ? `refused: another Carta identity ${formatTime(l.outcome_at)}` : null,
            l.revoked_at ? `revoked ${formatTime(l.revoked_at)} by ${l.revoked_by ?? 'an operator'}` : null,
          ].filter((f) => f !== null),
        })),
        openLinkId: data.links.find((l) => OPEN_LINK_STATES.includes(l.state))?.id ?? null,
        person: user.email ?? user.name ?? user.carta_user_id ?? `user #${user.id}`,
        messages: mail.messages.map((m) => ({ ...m, when: formatTime(m.sent_at ?? m.created_at) })),
        optedOutAt: mail.optedOutAt ? formatTime(mail.optedOutAt) : null,
        latestExpires: latest ? formatTime(latest.expiresAt) : null,
        notice:
          request.query.revoked === '1'
            ? 'revoked'
            : request.query.revoked === '0'
              ? 'not_revoked'
              : request.query.reused
                ? 'reused'
                : request.query.issued
                  ? 'issued'
                  : null,
        ttlDays: config.linkTtlDays,
      })
    },
  )
}

export default links

/** The filter in words, for the bulk page. */
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
