// kill -9 between commit and delivery: a real app process (`tsx src/server.ts`, background jobs on)
// sends webhooks to a receiver that answers the first few and then hangs, so the process is
// killed with SIGKILL while deliveries are on the wire; more events are committed while it is
// down; a new process starts on the same database. Every event must arrive, no webhook-id more
// than twice (at-least-once allows the one resend of an attempt cut off mid-way), every request
// signed as Standard Webhooks says (checked with the `standardwebhooks` package), and each user's
// events in order. SQLite by default; PostgreSQL with TEST_DATABASE_URL.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Webhook } from 'standardwebhooks'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { openDatabase } from '../../src/db/index.js'
import { TokenCipher } from '../../src/grants/token-cipher.js'
import { addEndpoint } from '../../src/webhooks/endpoints.js'
import { freePort } from '../helpers/app.js'
import { testDatabase } from '../helpers/database.js'
import { addGrant, addUser } from '../helpers/ledger.js'
import { type Proc, sharedSetup, startProcess } from './cluster.js'

interface Arrival {
  headers: IncomingHttpHeaders
  body: string
  answered: boolean
}

const USERS = 5
const SCOPES = [['read_issuer_info'], ['read_issuer_info', 'read_user_info'], ['read_user_info']]

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

t.test('kill -9 while webhooks are on the wire: every event arrives, at most twice, signed, in order', async (t) => {
  const shared = sharedSetup(await freePort()) // no sandbox needed: grants are written directly
  const database = await testDatabase(shared.dir)
  const port = await freePort()
  const procs: Proc[] = []
  let db: Awaited<ReturnType<typeof openDatabase>> | undefined

  // The receiver: answers the first ANSWER_FIRST requests, then holds every request open until
  // told to answer (the process that sent them is killed meanwhile).
  const ANSWER_FIRST = 4
  const arrivals: Arrival[] = []
  const held: ServerResponse[] = []
  let hang = true
  const receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const arrival: Arrival = { headers: req.headers, body, answered: false }
      arrivals.push(arrival)
      if (hang && arrivals.length > ANSWER_FIRST) {
        held.push(res)
        return
      }
      arrival.answered = true
      res.end()
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`

  t.teardown(async () => {
    for (const p of procs.reverse()) await p.stop()
    for (const res of held) res.destroy()
    receiver.closeAllConnections()
    await new Promise<void>((resolve) => receiver.close(() => resolve()))
    await db?.destroy()
    await database.drop()
    shared.cleanup()
  })

  const env = {
    ...shared.env,
    ...database.env,
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: join(shared.dir, 'app'),
    // A short attempt timeout so the dead process's leases lapse in seconds (lease = 6 × timeout).
    WEBHOOK_TIMEOUT_MS: '1000',
  }
  const config = loadConfig(env)
  const start = (name: string) => startProcess(name, 'src/server.ts', env, /Scope Ledger is running/)
  const first = await start('first')
  procs.push(first)
  db = await openDatabase(config.database, database.options)
  const ledger = { db, cipher: new TokenCipher(config.tokenKeys) }
  const { secret } = await addEndpoint(db, ledger.cipher, { url: hookUrl, events: [], actor: 'test' }, Date.now())

  // Each user's events committed by grant changes (the outbox row in the same transaction).
  const userIds: number[] = []
  for (let u = 0; u < USERS; u++) userIds.push(await addUser(db, Date.now(), { carta: `cu_kill_${u}` }))
  for (const scopes of SCOPES.slice(0, 2))
    for (const userId of userIds) await addGrant(ledger, userId, 'production-v2', scopes, Date.now())

  // The first process answers a few, then its requests hang: kill it with those on the wire.
  await until('deliveries held open by the receiver', () => held.length >= 2)
  first.child.kill('SIGKILL')
  await new Promise<void>((resolve) =>
    first.child.exitCode !== null || first.child.signalCode ? resolve() : first.child.once('exit', () => resolve()),
  )
  procs.splice(procs.indexOf(first), 1)
  t.equal(first.child.signalCode, 'SIGKILL', 'the first process was killed')
  const cutOff = held.length
  t.ok(cutOff >= 2, `${cutOff} deliveries cut off mid-way`)
  for (const res of held.splice(0)) res.destroy()
  hang = false

  // Committed while no process runs: the outbox holds them.
  for (const userId of userIds) await addGrant(ledger, userId, 'production-v2', SCOPES[2]!, Date.now())

  const second = await start('second')
  procs.push(second)
  const events = await db.selectFrom('webhook_events').select(['id', 'message_id', 'user_id']).orderBy('id').execute()
  t.equal(events.length, USERS * SCOPES.length, 'one event per grant change')
  await until(
    'every delivery recorded as delivered',
    async () => {
      const pending = await db!
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('status', '!=', 'delivered')
        .execute()
      return pending.length === 0
    },
    90_000,
  )

  // Every event arrived at least once, none more than twice.
  const idsArrived = arrivals.map((a) => String(a.headers['webhook-id']))
  for (const e of events) {
    const n = idsArrived.filter((id) => id === e.message_id).length
    if (n < 1 || n > 2) t.fail(`event ${e.id} arrived ${n} times`)
  }
  t.equal(new Set(idsArrived).size, events.length, 'every event arrived')
  const twice = events.filter((e) => idsArrived.filter((id) => id === e.message_id).length === 2).length
  t.ok(twice <= cutOff, `${twice} sent twice: only attempts cut off by the kill (${cutOff})`)
  t.ok(arrivals.filter((a) => a.answered).length >= events.length, 'each event answered once by the receiver at least')

  // Every request verifies with the Standard Webhooks reference package.
  const wh = new Webhook(secret)
  let verified = 0
  for (const a of arrivals) {
    try {
      wh.verify(a.body, {
        'webhook-id': String(a.headers['webhook-id']),
        'webhook-timestamp': String(a.headers['webhook-timestamp']),
        'webhook-signature': String(a.headers['webhook-signature']),
      })
      verified++
    } catch (err) {
      t.fail(`signature of ${a.headers['webhook-id']}: ${(err as Error).message}`)
    }
  }
  t.equal(verified, arrivals.length, 'every signature verifies')

  // Per user, in the order sent: event ids never go backwards (a resend repeats the last one).
  const eventOf = new Map(events.map((e) => [e.message_id, e]))
  for (const userId of userIds) {
    const sequence = arrivals
      .map((a) => eventOf.get(String(a.headers['webhook-id']))!)
      .filter((e) => e.user_id === userId)
      .map((e) => e.id)
    const inOrder = sequence.every((id, i) => i === 0 || id >= sequence[i - 1]!)
    t.ok(inOrder, `user ${userId}: ${sequence.join(' ')} in order`)
    t.equal(new Set(sequence).size, SCOPES.length, `user ${userId}: all ${SCOPES.length} events`)
  }
  t.notMatch(second.output(), /"level":50/, 'no error logged by the restarted process')
})
