// Webhooks end to end: events written with the grant change, signed as Standard Webhooks says
// (checked with the `standardwebhooks` package), retried with backoff against a receiver that
// fails then recovers, one user's events in order, endpoints disabled after sustained failure,
// a crash between commit and delivery costing at most a resend, and no token in any event or log.
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import t, { type Test } from 'tap'
import { ManualClock } from '../../src/clock.js'
import { changeGrant } from '../../src/grants/change.js'
import { DISABLE_AFTER_MS, MAX_ATTEMPTS, RETRY_SCHEDULE_MS } from '../../src/webhooks/delivery.js'
import { addEndpoint, redeliver } from '../../src/webhooks/endpoints.js'
import { startTestApp } from '../helpers/app.js'
import { addGrant, addUser, breakGrant } from '../helpers/ledger.js'
import { auditRows, createRollout } from '../links/fixtures.js'

interface Received {
  headers: IncomingHttpHeaders
  body: string
}

/** A receiver on loopback answering with the statuses given, then 200. */
async function receiver(t: Test, statuses: number[] = []) {
  const received: Received[] = []
  const queue = [...statuses]
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      received.push({ headers: req.headers, body })
      res.statusCode = queue.length ? queue.shift()! : 200
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/hooks`, received, queue }
}

function verify(t: Test, secret: string, r: Received) {
  const headers = {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  }
  const wh = new Webhook(secret)
  // verify() also checks the timestamp against the real clock (5 minutes); later attempts carry
  // the test clock's time, so those are checked by the package's own signer at that timestamp.
  const ts = Number(headers['webhook-timestamp'])
  if (Math.abs(ts * 1000 - Date.now()) < 4 * 60_000) t.ok(wh.verify(r.body, headers), 'signature verified')
  else
    t.equal(
      wh.sign(headers['webhook-id'], new Date(ts * 1000), r.body),
      headers['webhook-signature'],
      'signature matches',
    )
}

async function setup(t: Test) {
  const clock = new ManualClock(Date.now())
  const app = await startTestApp(t, { clock })
  return { app, clock }
}

t.test('grant events are signed, delivered, retried until the receiver recovers', async (t) => {
  const { app, clock } = await setup(t)
  const hook = await receiver(t, [500, 503])
  const { secret } = await addEndpoint(
    app.db,
    app.app.deps.cipher,
    { url: hook.url, events: [], actor: 'test' },
    clock.now(),
  )
  t.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/)
  const rollout = await createRollout(app.db, {
    appKey: 'production-v2',
    scopes: ['read_issuer_info'],
    now: clock.now(),
  })
  const userId = await addUser(app.db, clock.now(), { carta: 'c-ann', email: 'ann@example.com' })
  await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info', 'read_user_info'], clock.now())

  const events = await app.db.selectFrom('webhook_events').selectAll().orderBy('id').execute()
  t.same(
    events.map((e) => e.type),
    ['grant.created', 'rollout.user_covered'],
    'the grant and the rollout it covers, written with the change',
  )
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 1, 'one attempt: the first event (the second waits behind it)')
  clock.advance(RETRY_SCHEDULE_MS[0]!)
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 2, 'retried after 5 s')
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 2, 'not before its time')
  clock.advance(RETRY_SCHEDULE_MS[1]!)
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 4, 'the receiver recovered: both events delivered, in order')
  t.same(
    hook.received.map((r) => JSON.parse(r.body).type),
    ['grant.created', 'grant.created', 'grant.created', 'rollout.user_covered'],
  )
  for (const r of hook.received) verify(t, secret, r)
  const ids = hook.received.map((r) => r.headers['webhook-id'])
  t.equal(ids[0], ids[2], 'the same webhook-id on every attempt')
  const first = JSON.parse(hook.received[0]!.body)
  t.match(first, {
    type: 'grant.created',
    data: {
      id: ids[0],
      cartaUserId: 'c-ann',
      externalUserId: null,
      app: 'production-v2',
      scopes: ['read_issuer_info', 'read_user_info'],
      scopesSource: 'reported',
    },
  })
  t.ok(Date.parse(first.timestamp) > 0, 'an event time')
  t.match(JSON.parse(hook.received[3]!.body).data, { rolloutId: rollout.id, cartaUserId: 'c-ann' })
  const rows = await app.db.selectFrom('webhook_deliveries').selectAll().orderBy('id').execute()
  t.match(rows, [
    { status: 'delivered', attempts: 3, last_status_code: 200 },
    { status: 'delivered', attempts: 1 },
  ])

  // broken, revoked, scopes changed: each its event; never a token in any of them or in the log.
  await breakGrant(app.app.deps, userId, clock.now())
  const grantId = await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info'], clock.now())
  await app.db
    .transaction()
    .execute((trx) =>
      changeGrant(
        trx,
        app.app.deps.cipher,
        { kind: 'scopes', grantId, scopes: ['read_issuer_info', 'read_user_info'], via: 'refresh' },
        clock.now(),
      ),
    )
  await app.db
    .transaction()
    .execute((trx) =>
      changeGrant(trx, app.app.deps.cipher, { kind: 'revoked', grantId, actor: 'operator:ops' }, clock.now()),
    )
  await app.app.jobs.run('webhooks')
  await app.app.jobs.run('webhooks')
  const types = hook.received.slice(4).map((r) => JSON.parse(r.body).type)
  t.same(types, ['grant.broken', 'grant.created', 'rollout.user_covered', 'grant.scopes_changed', 'grant.revoked'])
  const tokens = await app.db.selectFrom('grant_tokens').select('grant_id').execute()
  const everything = JSON.stringify(hook.received) + JSON.stringify(app.logs)
  t.notMatch(everything, /at-\d+-\d+|rt-\d+-\d+/, 'no access or refresh token in any event or log line')
  t.notOk(everything.includes(secret.slice(6)), 'the secret is never sent or logged')
  t.ok(tokens.length >= 0)
})

t.test('one user waits behind their failing event; another user does not', async (t) => {
  const { app, clock } = await setup(t)
  const hook = await receiver(t, [500])
  await addEndpoint(
    app.db,
    app.app.deps.cipher,
    { url: hook.url, events: ['grant.created'], actor: 'test' },
    clock.now(),
  )
  const ann = await addUser(app.db, clock.now(), { carta: 'c-ann' })
  const bob = await addUser(app.db, clock.now(), { carta: 'c-bob' })
  await addGrant(app.app.deps, ann, 'production-v2', ['read_issuer_info'], clock.now())
  await addGrant(app.app.deps, ann, 'production-v2', ['read_issuer_info', 'read_user_info'], clock.now())
  await addGrant(app.app.deps, bob, 'production-v2', ['read_issuer_info'], clock.now())
  t.equal((await app.db.selectFrom('webhook_events').selectAll().execute()).length, 3, 'only subscribed types')
  await app.app.jobs.run('webhooks')
  const who = () =>
    hook.received.map((r) => `${JSON.parse(r.body).data.cartaUserId}:${JSON.parse(r.body).data.scopes.length}`)
  t.same(who(), ['c-ann:1', 'c-bob:1'], "ann's first failed, her second waits; bob's goes")
  clock.advance(RETRY_SCHEDULE_MS[0]!)
  await app.app.jobs.run('webhooks')
  t.same(who(), ['c-ann:1', 'c-bob:1', 'c-ann:1', 'c-ann:2'], 'then hers, in order')
})

t.test('deliveries run concurrently across endpoints and users, each user in order per endpoint', async (t) => {
  const { app, clock } = await setup(t)
  // Two receivers that answer after a random 5–40 ms and count the requests in flight.
  let inFlight = 0
  let maxInFlight = 0
  const arrivals: Array<{ endpoint: string; messageId: string; user: string }> = []
  const servers = await Promise.all(
    ['a', 'b'].map(async (name) => {
      const server = createServer((req, res) => {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        let body = ''
        req.on('data', (c) => (body += c))
        req.on('end', () => {
          arrivals.push({
            endpoint: name,
            messageId: String(req.headers['webhook-id']),
            user: JSON.parse(body).data.cartaUserId,
          })
          setTimeout(
            () => {
              inFlight--
              res.end()
            },
            5 + Math.random() * 35,
          )
        })
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`
    }),
  )
  for (const url of servers)
    await addEndpoint(app.db, app.app.deps.cipher, { url, events: ['grant.created'], actor: 'test' }, clock.now())
  const scopeSets = [['read_issuer_info'], ['read_issuer_info', 'read_user_info'], ['read_user_info']]
  for (let u = 0; u < 8; u++) {
    const userId = await addUser(app.db, clock.now(), { carta: `c-${u}` })
    for (const scopes of scopeSets) await addGrant(app.app.deps, userId, 'production-v2', scopes, clock.now())
  }
  const events = await app.db.selectFrom('webhook_events').select(['id', 'message_id']).orderBy('id').execute()
  t.equal(events.length, 24)
  const eventId = new Map(events.map((e) => [e.message_id, e.id]))

  await app.app.jobs.run('webhooks')
  t.equal(arrivals.length, 48, 'every event to both endpoints in one run')
  t.ok(maxInFlight > 1, `sent concurrently (at most ${maxInFlight} in flight)`)
  t.ok(maxInFlight <= 8, 'never more than WEBHOOK_CONCURRENCY (8) in flight')
  t.equal(new Set(arrivals.map((a) => `${a.endpoint}:${a.messageId}`)).size, 48, 'each once')
  for (const endpoint of ['a', 'b'])
    for (let u = 0; u < 8; u++) {
      const ids = arrivals
        .filter((a) => a.endpoint === endpoint && a.user === `c-${u}`)
        .map((a) => eventId.get(a.messageId)!)
      t.same(
        ids,
        [...ids].sort((x, y) => x - y),
        `endpoint ${endpoint}, user c-${u}: in event order`,
      )
    }
})

t.test('a dead endpoint: retried for more than 24 h, then disabled and the operator told', async (t) => {
  const { app, clock } = await setup(t)
  const hook = await receiver(t, Array(20).fill(500))
  const { id } = await addEndpoint(
    app.db,
    app.app.deps.cipher,
    { url: hook.url, events: [], actor: 'test' },
    clock.now(),
  )
  const userId = await addUser(app.db, clock.now(), { carta: 'c-ann' })
  const start = clock.now()
  await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info'], clock.now())
  await app.app.jobs.run('webhooks')
  for (const wait of RETRY_SCHEDULE_MS) {
    clock.advance(wait)
    await app.app.jobs.run('webhooks')
  }
  t.equal(hook.received.length, MAX_ATTEMPTS, `${MAX_ATTEMPTS} attempts`)
  t.ok(clock.now() - start >= DISABLE_AFTER_MS, 'spread over more than 24 hours')
  const delivery = await app.db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow()
  t.match(delivery, { status: 'failed', attempts: MAX_ATTEMPTS, last_status_code: 500, last_error: 'HTTP 500' })
  const endpoint = await app.db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  t.equal(endpoint.status, 'disabled')
  t.match(endpoint.disabled_reason, /every delivery failed since/)
  t.match(await auditRows(app.db, 'webhook.endpoint_disabled'), [{ actor: 'system', details: { endpointId: id } }])
  t.ok(
    app.logs.some((l) => l.msg === 'webhook endpoint disabled after sustained failure' && l.level === 50),
    'an error log line',
  )

  // Disabled: new events are not even queued for it; a manual redelivery waits for re-enabling.
  await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info'], clock.now())
  t.equal((await app.db.selectFrom('webhook_deliveries').selectAll().execute()).length, 1)
  await redeliver(app.db, delivery.id, 'operator:ops', clock.now())
  hook.queue.length = 0
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, MAX_ATTEMPTS, 'nothing sent to a disabled endpoint')
})

t.test('killed between commit and delivery: sent after the lease lapses, once', async (t) => {
  const { app, clock } = await setup(t)
  const hook = await receiver(t)
  await addEndpoint(app.db, app.app.deps.cipher, { url: hook.url, events: [], actor: 'test' }, clock.now())
  const userId = await addUser(app.db, clock.now(), { carta: 'c-ann' })
  await addGrant(app.app.deps, userId, 'production-v2', ['read_issuer_info'], clock.now())
  // Another instance leased the row and died (kill -9) before recording anything.
  await app.db
    .updateTable('webhook_deliveries')
    .set({ lock_owner: 'dead-instance', lock_until: clock.now() + 60_000 })
    .execute()
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 0, 'not while the dead lease holds')
  clock.advance(60_001)
  await app.app.jobs.run('webhooks')
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 1, 'sent once after the lease lapsed')
  const redelivered = await redeliver(app.db, 1, 'operator:ops', clock.now())
  await app.app.jobs.run('webhooks')
  t.equal(hook.received.length, 2, 'a manual redelivery sends it again')
  t.equal(hook.received[1]!.headers['webhook-id'], hook.received[0]!.headers['webhook-id'], 'with the same webhook-id')
  t.ok(redelivered > 1)
})
