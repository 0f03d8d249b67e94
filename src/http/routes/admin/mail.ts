// Email from a rollout's page: preview and start a campaign (ticked users, the current filter, or
// everyone lacking), pause and resume it, the funnel's people per step, and revoking a link.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { parseReminderDays } from '../../../config.js'
import { DomainError } from '../../../errors.js'
import { issueLink, linkContextFrom, linkUrl, revokeLink } from '../../../links/links.js'
import {
  MAX_TICKED,
  type Selection,
  createCampaign,
  previewSelection,
  setCampaignPaused,
} from '../../../mail/campaigns.js'
import { FUNNEL_LABELS, FUNNEL_STEPS, funnelPeople } from '../../../mail/funnel.js'
import { linkMessage } from '../../../mail/message.js'
import { type LackingFilter, filterQuery, lackingFilter } from '../../../rollouts/lacking.js'
import { findRollout } from '../../../rollouts/rollouts.js'
import { parseScopes } from '../../../scopes.js'
import { DAY_MS, formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { Id, IdParams, LackingFilterFields, Matching } from '../../schemas.js'
import { operatorActor } from './access.js'

const SelectionFields = {
  ...LackingFilterFields,
  selection: Type.Optional(Type.Enum(['everyone', 'filter', 'users'])),
  user_id: Type.Optional(Type.Array(Id, { maxItems: MAX_TICKED })),
}

const CreateBody = Type.Object({
  ...SelectionFields,
  /** "3, 7": reminder days after the first email; empty: none. */
  reminder_days: Type.Optional(Matching('^[0-9 ,]{0,40}$', 40)),
  /** Present (checkbox) when reminders are wanted. */
  reminders: Type.Optional(Type.Enum(['on'])),
})

function selectionOf(input: {
  selection?: 'everyone' | 'filter' | 'users'
  user_id?: number[]
  scope?: string
  app?: number
  q?: string
}): Selection {
  const kind = input.selection ?? 'everyone'
  const filter: LackingFilter = lackingFilter({
    ...(input.scope !== undefined ? { scope: input.scope } : {}),
    ...(input.app !== undefined ? { app: input.app } : {}),
    ...(input.q !== undefined ? { q: input.q } : {}),
  })
  return { kind, filter, userIds: kind === 'users' ? (input.user_id ?? []) : [] }
}

const mail: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  const csrf = { preHandler: app.csrfProtection }
  const context = linkContextFrom(config, clock)

  const preview = async (request: FastifyRequest, reply: FastifyReply, rolloutId: number, selection: Selection) => {
    const rollout = await findRollout(db, rolloutId)
    if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
    const { counts, sampleUserId } = await previewSelection(db, rolloutId, selection)
    let sample: { to: string; subject: string; text: string } | null = null
    if (sampleUserId !== null) {
      const [user, member] = await Promise.all([
        db.selectFrom('end_users').select(['email', 'name']).where('id', '=', sampleUserId).executeTakeFirstOrThrow(),
        db
          .selectFrom('rollout_members')
          .select('missing_scopes')
          .where('rollout_id', '=', rolloutId)
          .where('user_id', '=', sampleUserId)
          .executeTakeFirst(),
      ])
      // The preview shows a placeholder instead of a working link: previewing issues nothing.
      const message = linkMessage({
        to: user.email ?? '',
        name: user.name,
        rolloutName: rollout.name,
        added: parseScopes(member?.missing_scopes ?? rollout.required_scopes),
        url: `${linkUrl(context, { id: 1, nonce: 'AAAAAAAAAAAAAAAAAAAAAA' }).replace(/[^/]+$/, '')}<link made when the email is sent>`,
        expiresAt: clock.now() + config.linkTtlDays * DAY_MS,
        unsubscribeUrl: `${config.publicUrl}/mail/unsubscribe/<this person's opt-out link>`,
        step: 0,
      })
      sample = { to: message.to, subject: message.subject, text: message.text }
    }
    return renderPage(request, reply, 'admin/mail-preview', {
      title: `Email links: ${rollout.name}`,
      csrf: true,
      rollout,
      selection,
      counts,
      sample,
      transport: config.mail.transport.kind,
      from: config.mail.from,
      reminderDays: config.mail.reminderDays.join(', '),
      backHref: `/admin/rollouts/${rolloutId}${selection.kind === 'filter' && filterQuery(selection.filter) ? `?${filterQuery(selection.filter)}` : ''}#lacking`,
    })
  }

  app.get(
    '/rollouts/:id/mail',
    { config: { access: 'operator' }, schema: { params: IdParams, querystring: Type.Object(SelectionFields) } },
    async (request, reply) => preview(request, reply, request.params.id, selectionOf(request.query)),
  )

  // The ticked rows arrive in a POST (the list's form carries its CSRF token, never in a URL).
  app.post(
    '/rollouts/:id/mail/preview',
    { ...csrf, config: { access: 'operator' }, schema: { params: IdParams, body: Type.Object(SelectionFields) } },
    async (request, reply) =>
      preview(request, reply, request.params.id, selectionOf({ ...request.body, selection: 'users' })),
  )

  app.post(
    '/rollouts/:id/mail',
    { ...csrf, config: { access: 'operator' }, schema: { params: IdParams, body: CreateBody } },
    async (request, reply) => {
      const rolloutId = request.params.id
      const selection = selectionOf(request.body)
      const days = request.body.reminders === 'on' ? parseReminderDays(request.body.reminder_days ?? '') : []
      if (days === null)
        throw new DomainError('request.invalid', 'Reminder days must be up to 5 increasing whole days from 1 to 90.', {
          title: 'Reminder days not understood',
        })
      const campaignId = await createCampaign(
        db,
        config,
        { rolloutId, selection, reminderDays: days, createdBy: operatorActor(request) },
        clock.now(),
      )
      request.log.info(
        { rolloutId, campaignId, selection: selection.kind, reminderDays: days },
        'email campaign created',
      )
      app.jobs.kick('mail')
      return reply.redirect(`/admin/rollouts/${rolloutId}?campaign=${campaignId}#mail`, 303)
    },
  )

  for (const action of ['pause', 'resume'] as const) {
    app.post(
      `/rollouts/:id/mail/:campaignId/${action}`,
      { ...csrf, config: { access: 'operator' }, schema: { params: Type.Object({ id: Id, campaignId: Id }) } },
      async (request, reply) => {
        const { id: rolloutId, campaignId } = request.params
        const changed = await setCampaignPaused(
          db,
          { rolloutId, campaignId, paused: action === 'pause', actor: operatorActor(request) },
          clock.now(),
        )
        request.log.info(
          { rolloutId, campaignId, changed },
          action === 'pause' ? 'campaign paused' : 'campaign resumed',
        )
        if (action === 'resume') app.jobs.kick('mail')
        return reply.redirect(`/admin/rollouts/${rolloutId}#mail`, 303)
      },
    )
  }

  app.get(
    '/rollouts/:id/funnel',
    {
      config: { access: 'viewer' },
      schema: {
        params: IdParams,
        querystring: Type.Object({ step: Type.Enum([...FUNNEL_STEPS]), after: Type.Optional(Id) }),
      },
    },
    async (request, reply) => {
      const rolloutId = request.params.id
      const rollout = await findRollout(db, rolloutId)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      const { step, after } = request.query
      const page = await funnelPeople(db, rolloutId, step, clock.now(), after !== undefined ? { after } : {})
      return renderPage(request, reply, 'admin/funnel', {
        title: `${FUNNEL_LABELS[step]}: ${rollout.name}`,
        rollout,
        step,
        label: FUNNEL_LABELS[step],
        steps: FUNNEL_STEPS.map((s) => ({ step: s, label: FUNNEL_LABELS[s] })),
        rows: page.rows,
        nextHref: page.next ? `/admin/rollouts/${rolloutId}/funnel?step=${step}&after=${page.next}` : null,
        first: after === undefined,
      })
    },
  )

  // Per-row selection: a link for each ticked person (the open one when they have one).
  app.post(
    '/rollouts/:id/links/ticked',
    { ...csrf, config: { access: 'operator' }, schema: { params: IdParams, body: Type.Object(SelectionFields) } },
    async (request, reply) => {
      const rolloutId = request.params.id
      const ids = [...new Set(request.body.user_id ?? [])]
      if (ids.length === 0)
        throw new DomainError('mail.bad_selection', 'Tick at least one person in the list first.', { reason: 'none' })
      const rollout = await findRollout(db, rolloutId)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      const people = []
      for (const userId of ids) {
        const issued = await issueLink(db, context, { rolloutId, userId, issuedBy: operatorActor(request) })
        const user = await db
          .selectFrom('end_users')
          .select(['email', 'name', 'carta_user_id'])
          .where('id', '=', userId)
          .executeTakeFirstOrThrow()
        people.push({
          userId,
          label: user.email ?? user.name ?? user.carta_user_id ?? `user #${userId}`,
          url: issued.url,
          reused: issued.reused,
          expiresAt: issued.link.expires_at,
        })
      }
      request.log.info(
        { rolloutId, users: ids.length, issued: people.filter((p) => !p.reused).length },
        'reauthorization links issued for ticked users',
      )
      return renderPage(request, reply, 'admin/links-ticked', {
        title: 'Links for the ticked people',
        rollout,
        people,
        formatTime,
      })
    },
  )

  app.post(
    '/rollouts/:id/links/:linkId/revoke',
    { ...csrf, config: { access: 'operator' }, schema: { params: Type.Object({ id: Id, linkId: Id }) } },
    async (request, reply) => {
      const { id: rolloutId, linkId } = request.params
      const result = await revokeLink(db, { linkId, rolloutId, revokedBy: operatorActor(request) }, clock.now())
      request.log.info({ rolloutId, linkId, revoked: result.revoked }, 'reauthorization link revoked')
      return reply.redirect(
        `/admin/rollouts/${rolloutId}/links/${result.userId}?revoked=${result.revoked ? 1 : 0}`,
        303,
      )
    },
  )
}

export default mail

/** Link from the rollout page to the preview of emailing everyone in the current filter. */
export function previewHref(rolloutId: number, filter: LackingFilter): string {
  const query = filterQuery({ ...filter, sort: 'user' })
  return `/admin/rollouts/${rolloutId}/mail?selection=${query ? `filter&${query}` : 'everyone'}`
}
