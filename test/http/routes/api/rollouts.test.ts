// /api/v1/rollouts/{id}/lacking over HTTP: each item names the person by Carta id and by the
// integrator's own id (set by a connect session), so the product can act on it without a lookup.
import t from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import { startTestApp } from '../../../helpers/app.js'
import { createMember, createRollout } from '../../../links/fixtures.js'
import { api, newKey } from './helpers.js'

type ItemsSchema = {
  properties: {
    items: { items: { required: string[]; properties: { externalUserId: { anyOf: Array<{ type: string }> } } } }
  }
}

t.test('lacking items carry externalUserId (null when the product never named the person)', async (t) => {
  const clock = new ManualClock(Date.parse('2026-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const granted = ['read_issuer_info', 'read_user_info']
  const ann = await createMember(
    app.app.deps,
    { cartaUserId: 'c-ann', email: 'ann@example.com', appKey: 'production-v1', granted },
    clock.now(),
  )
  await createMember(
    app.app.deps,
    { cartaUserId: 'c-bob', email: 'bob@example.com', appKey: 'production-v1', granted },
    clock.now(),
  )
  await app.db.updateTable('end_users').set({ external_user_id: 'acct-42' }).where('id', '=', ann).execute()
  const { key } = await newKey(app, ['read'])

  const res = await api(app, key, 'GET', `/api/v1/rollouts/${rollout.id}/lacking?sort=user`)
  t.equal(res.status, 200)
  const items = res.body.items as Array<Record<string, unknown>>
  t.same(
    items.map((i) => [i.cartaUserId, i.externalUserId]),
    [
      ['c-ann', 'acct-42'],
      ['c-bob', null],
    ],
  )
  t.same(items[0]!.missingScopes, ['read_issuer_capitalizationtablesummary'])

  // The same through a one-item page and its cursor.
  const first = await api(app, key, 'GET', `/api/v1/rollouts/${rollout.id}/lacking?sort=user&limit=1`)
  const next = await api(
    app,
    key,
    'GET',
    `/api/v1/rollouts/${rollout.id}/lacking?sort=user&limit=1&cursor=${encodeURIComponent(String(first.body.nextCursor))}`,
  )
  t.same(
    (next.body.items as Array<Record<string, unknown>>).map((i) => i.externalUserId),
    [null],
  )

  // The document declares the field (the answers are validated against it in openapi.test.ts).
  const doc = (await (await fetch(`${app.url}/api/openapi.json`)).json()) as {
    paths: Record<string, { get: { responses: { 200: { content: Record<string, { schema: ItemsSchema }> } } } }>
  }
  const item =
    doc.paths['/api/v1/rollouts/{id}/lacking']!.get.responses[200].content['application/json']!.schema.properties.items
      .items
  t.ok(item.required.includes('externalUserId'), 'externalUserId is a required property')
  t.same(
    item.properties.externalUserId.anyOf.map((s) => s.type),
    ['string', 'null'],
  )
})
