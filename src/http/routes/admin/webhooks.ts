// Webhook endpoints (admin only): the list (a disabled endpoint says why, at the top), adding one
// (the signing secret shown once, on the POST's answer), each endpoint's delivery log with
// response codes, manual redelivery, disabling, enabling and removing.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { formatTime } from '../../../time.js'
import {
  addEndpoint,
  findEndpoint,
  listEndpoints,
  parseEventTypes,
  recentDeliveries,
  redeliver,
  removeEndpoint,
  setEndpointEnabled,
} from '../../../webhooks/endpoints.js'
import { WEBHOOK_EVENT_TYPES } from '../../../webhooks/outbox.js'
import { renderPage } from '../../render.js'
import { Id, IdParams } from '../../schemas.js'
import { operatorActor } from './access.js'

const AddBody = Type.Object({
  url: Type.String({ minLength: 1, maxLength: 2000, pattern: '^[\\x21-\\x7E]+$' }),
  events: Type.Optional(Type.Array(Type.Enum([...WEBHOOK_EVENT_TYPES]), { maxItems: WEBHOOK_EVENT_TYPES.length })),
})

const webhooks: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, cipher } = app.deps
  const admin = { access: 'admin' as const }
  const csrf = { preHandler: app.csrfProtection }

  const listPage = async (created: { id: number; url: string; secret: string } | null, notice: string | null) => ({
    title: 'Webhooks',
    csrf: true,
    endpoints: (await listEndpoints(db)).map((e) => ({
      ...e,
      eventList: e.events ? e.events.split(' ') : ['every event'],
      failingSince: e.failing_since === null ? null : formatTime(Number(e.failing_since)),
    })),
    eventTypes: WEBHOOK_EVENT_TYPES,
    created,
    notice,
  })

  app.get(
    '/webhooks',
    { config: admin, schema: { querystring: Type.Object({ done: Type.Optional(Type.Enum(['removed'])) }) } },
    async (request, reply) =>
      renderPage(
        request,
        reply,
        'admin/webhooks',
        await listPage(null, request.query.done === 'removed' ? 'The endpoint was removed.' : null),
      ),
  )

  app.post('/webhooks', { config: admin, ...csrf, schema: { body: AddBody } }, async (request, reply) => {
    const events = parseEventTypes(request.body.events ?? [])
    const { id, secret } = await addEndpoint(
      db,
      cipher,
      { url: request.body.url, events, actor: operatorActor(request) },
      clock.now(),
    )
    request.log.info({ endpointId: id, events }, 'webhook endpoint added')
    reply.header('cache-control', 'no-store')
    const url = (await findEndpoint(db, id)).url
    return renderPage(request, reply, 'admin/webhooks', await listPage({ id, url, secret }, null))
  })

  app.get(
    '/webhooks/:id',
    {
      config: admin,
      schema: { params: IdParams, querystring: Type.Object({ done: Type.Optional(Type.Enum(['redelivered'])) }) },
    },
    async (request, reply) => {
      const endpoint = await findEndpoint(db, request.params.id)
      const deliveries = (await recentDeliveries(db, endpoint.id)).map((d) => ({
        ...d,
        created: formatTime(Number(d.created_at)),
        lastAttempt: d.last_attempt_at === null ? null : formatTime(Number(d.last_attempt_at)),
        nextAttempt: d.status === 'pending' ? formatTime(Number(d.next_attempt_at)) : null,
      }))
      return renderPage(request, reply, 'admin/webhook', {
        title: `Webhook ${endpoint.id}`,
        csrf: true,
        endpoint: { ...endpoint, eventList: endpoint.events ? endpoint.events.split(' ') : ['every event'] },
        deliveries,
        notice: request.query.done === 'redelivered' ? 'The event was queued to be sent again.' : null,
      })
    },
  )

  app.post(
    '/webhooks/:id/deliveries/:deliveryId/redeliver',
    { config: admin, ...csrf, schema: { params: Type.Object({ id: Id, deliveryId: Id }) } },
    async (request, reply) => {
      const { id, deliveryId } = request.params
      const newId = await redeliver(db, deliveryId, operatorActor(request), clock.now(), id)
      request.log.info({ endpointId: id, deliveryId, newDeliveryId: newId }, 'webhook redelivery queued')
      app.jobs.kick('webhooks')
      return reply.redirect(`/admin/webhooks/${id}?done=redelivered`, 303)
    },
  )

  app.post(
    '/webhooks/:id/:action',
    {
      config: admin,
      ...csrf,
      schema: { params: Type.Object({ id: Id, action: Type.Enum(['enable', 'disable', 'remove']) }) },
    },
    async (request, reply) => {
      const { id, action } = request.params
      const actor = operatorActor(request)
      if (action === 'remove') {
        await removeEndpoint(db, id, actor, clock.now())
        request.log.info({ endpointId: id }, 'webhook endpoint removed')
        return reply.redirect('/admin/webhooks?done=removed', 303)
      }
      await setEndpointEnabled(db, id, action === 'enable', actor, clock.now())
      request.log.info({ endpointId: id, action }, 'webhook endpoint status changed')
      if (action === 'enable') app.jobs.kick('webhooks')
      return reply.redirect(`/admin/webhooks/${id}`, 303)
    },
  )
}

export default webhooks
