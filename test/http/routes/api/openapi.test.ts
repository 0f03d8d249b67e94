// The OpenAPI document is generated from the routes' schemas, and the API's real answers (success
// and problem) validate against the document's own response schemas. The reference page renders
// from the same document.
import Ajv2020 from 'ajv/dist/2020.js'
import t from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import { startTestApp } from '../../../helpers/app.js'
import { connectUser } from '../../../helpers/connect.js'
import { createRollout } from '../../../links/fixtures.js'
import { api, newKey } from './helpers.js'

type Doc = {
  openapi: string
  paths: Record<
    string,
    Record<
      string,
      { responses: Record<string, { content: Record<string, { schema: object }> }>; 'x-permission': string }
    >
  >
}

t.test('every answer validates against the document', async (t) => {
  const clock = new ManualClock(Date.now())
  const app = await startTestApp(t, { clock })
  await connectUser(app)
  const rollout = await createRollout(app.db, {
    appKey: 'production-v2',
    scopes: ['read_issuer_info'],
    now: clock.now(),
  })
  const { key } = await newKey(app)
  const { key: readOnly } = await newKey(app, ['read'])

  const res = await fetch(`${app.url}/api/openapi.json`)
  t.equal(res.status, 200)
  const doc = (await res.json()) as Doc
  t.equal(doc.openapi, '3.1.0')
  t.same(Object.keys(doc.paths).sort(), [
    '/api/v1/connect-sessions',
    '/api/v1/rollouts',
    '/api/v1/rollouts/{id}',
    '/api/v1/rollouts/{id}/lacking',
    '/api/v1/users',
    '/api/v1/users/{cartaUserId}',
    '/api/v1/users/{cartaUserId}/access-token',
    '/api/v1/users/{cartaUserId}/reauthorization-links',
  ])
  t.equal(doc.paths['/api/v1/users/{cartaUserId}/access-token']!.get!['x-permission'], 'tokens')

  const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false })
  const cases: Array<[string, string, string, string | null, unknown?]> = [
    ['get', '/api/v1/users/{cartaUserId}', '/api/v1/users/cu_1001', key],
    ['get', '/api/v1/users/{cartaUserId}', '/api/v1/users/nobody', key],
    ['get', '/api/v1/users', '/api/v1/users?externalUserId=x', key],
    ['get', '/api/v1/users', '/api/v1/users', key],
    ['get', '/api/v1/users/{cartaUserId}/access-token', '/api/v1/users/cu_1001/access-token', key],
    ['get', '/api/v1/users/{cartaUserId}/access-token', '/api/v1/users/cu_1001/access-token', readOnly],
    ['get', '/api/v1/users/{cartaUserId}/access-token', '/api/v1/users/cu_1001/access-token', null],
    [
      'post',
      '/api/v1/users/{cartaUserId}/reauthorization-links',
      '/api/v1/users/cu_1001/reauthorization-links',
      key,
      { rolloutId: rollout.id },
    ],
    [
      'post',
      '/api/v1/users/{cartaUserId}/reauthorization-links',
      '/api/v1/users/cu_1001/reauthorization-links',
      key,
      { rolloutId: 'x' },
    ],
    ['get', '/api/v1/rollouts', '/api/v1/rollouts', key],
    ['get', '/api/v1/rollouts/{id}', `/api/v1/rollouts/${rollout.id}`, key],
    ['get', '/api/v1/rollouts/{id}', '/api/v1/rollouts/999', key],
    ['get', '/api/v1/rollouts/{id}/lacking', `/api/v1/rollouts/${rollout.id}/lacking?limit=1`, key],
    ['get', '/api/v1/rollouts/{id}/lacking', `/api/v1/rollouts/${rollout.id}/lacking?cursor=bogus`, key],
  ]
  const statuses = new Set<number>()
  for (const [method, template, path, k, body] of cases) {
    const answer = await api(app, k, method.toUpperCase(), path, body)
    statuses.add(answer.status)
    const declared = doc.paths[template]?.[method]?.responses[String(answer.status)]
    t.ok(declared, `${method} ${path}: ${answer.status} is declared`)
    const type = answer.headers.get('content-type')!.split(';')[0]!
    const schema = declared?.content[type]?.schema
    t.ok(schema, `${method} ${path}: declared as ${type}`)
    if (!schema) continue
    const valid = ajv.validate(schema, answer.body)
    t.ok(valid, `${method} ${path} ${answer.status} validates${valid ? '' : `: ${ajv.errorsText()}`}`)
  }
  t.same([...statuses].sort(), [200, 400, 401, 403, 404], 'successes and problems both checked')

  const docs = await fetch(`${app.url}/api/docs`)
  t.equal(docs.status, 200)
  const html = await docs.text()
  t.match(html, 'GET /api/v1/users/{cartaUserId}/access-token')
  t.match(html, 'id="problem-api.reconnect_required"', 'problem types resolve to an anchor')
  t.notMatch(html, /<script src="https?:/, 'nothing from a CDN')
})
