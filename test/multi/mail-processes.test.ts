// The email outbox across real processes (`tsx src/server.ts`, configured by environment only),
// sending to one SMTP server in this process:
//   - two instances on one PostgreSQL schema expand one campaign and send it: every (person,
//     step) reaches the server exactly once (PostgreSQL only: SQLite is one instance);
//   - kill -9 while a message is mid-send, then a restart, on either engine. The receiver follows
//     RFC 5321 §6.1: it takes a message only by replying to its end of data on a live connection.
//     Killed before the end of data: the restarted process sends it again, so everyone receives
//     exactly one message. Killed after the end of data, before the reply: the outcome is unknown
//     to the sender, so that row is failed ("interrupted") and never sent again — nobody twice.
import { join } from 'node:path'
import { SMTPServer } from 'smtp-server'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.js'
import { type Db, openDatabase } from '../../src/db/index.js'
import { TokenCipher } from '../../src/grants/token-cipher.js'
import { createCampaign } from '../../src/mail/campaigns.js'
import { freePort } from '../helpers/app.js'
import { testDatabase, testPostgresUrl } from '../helpers/database.js'
import { createMember, createRollout } from '../links/fixtures.js'
import { type Proc, sharedSetup, startProcess } from './cluster.js'

const OLD = ['read_issuer_info', 'read_user_info']

interface Receiver {
  url: string
  /** Messages taken (replied 250 on a live connection), per recipient. */
  taken: Map<string, number>
  /** Messages whose end of data arrived but whose connection closed before the reply. */
  lostAtReply: string[]
  /** Recipients whose RCPT or end-of-data reply is being held right now. */
  holding: Set<string>
  delays: { rcptMs: number; replyMs: number }
}

async function startReceiver(t: Test): Promise<Receiver> {
  const closed = new Set<string>()
  const r: Receiver = {
    url: '',
    taken: new Map(),
    lostAtReply: [],
    holding: new Set(),
    delays: { rcptMs: 0, replyMs: 0 },
  }
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onClose(session) {
      closed.add(session.id)
    },
    onRcptTo(address, _session, callback) {
      if (!r.delays.rcptMs) return callback()
      r.holding.add(address.address)
      setTimeout(() => {
        r.holding.delete(address.address)
        callback()
      }, r.delays.rcptMs)
    },
    onData(stream, session, callback) {
      stream.on('data', () => {})
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((a) => a.address)
        for (const a of to) r.holding.add(a)
        setTimeout(() => {
          for (const a of to) r.holding.delete(a)
          // No one to reply to: the client never learns of it, and the message is not taken.
          if (closed.has(session.id)) {
            r.lostAtReply.push(...to)
            return callback(new Error('connection closed'))
          }
          for (const a of to) r.taken.set(a, (r.taken.get(a) ?? 0) + 1)
          callback()
        }, r.delays.replyMs)
      })
    },
  })
  // A killed client resets its connections: the server reports it as an error event.
  server.on('error', () => {})
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  r.url = `smtp://127.0.0.1:${(server.server.address() as { port: number }).port}`
  t.teardown(() => new Promise<void>((done) => server.close(() => done())))
  return r
}

/** Shared environment, a database (fresh schema or file), and N people lacking a rollout's scopes. */
async function setup(t: Test, people: number, receiver: Receiver) {
  const shared = sharedSetup(await freePort()) // the sandbox is never called: no campaign talks to Carta
  const database = await testDatabase(shared.dir)
  const procs: Proc[] = []
  let db: Db | undefined
  t.teardown(async () => {
    for (const p of procs.reverse()) await p.stop()
    await db?.destroy()
    await database.drop()
    shared.cleanup()
  })
  const instanceEnv = async (name: string) => {
    const port = await freePort()
    return {
      ...shared.env,
      ...database.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATA_DIR: join(shared.dir, name),
      SMTP_URL: receiver.url,
      MAIL_FROM: 'ledger@example.com',
      MAIL_RATE_PER_SECOND: '0',
    }
  }
  const start = async (name: string) => {
    const p = await startProcess(name, 'src/server.ts', await instanceEnv(name), /Scope Ledger is running/)
    procs.push(p)
    return p
  }
  // The first instance migrates; the test then writes the people and the campaign beside it.
  const first = await start('A')
  const config = loadConfig({ ...(await instanceEnv('test')), LOG_LEVEL: 'silent' })
  db = await openDatabase(config.database)
  const ledger = { db, cipher: new TokenCipher(config.tokenKeys) }
  const now = Date.now()
  const rollout = await createRollout(db, { now })
  for (let i = 0; i < people; i++)
    await createMember(
      ledger,
      { cartaUserId: `c-${i}`, email: `p${i}@example.com`, appKey: 'production-v1', granted: OLD },
      now,
    )
  const campaign = async () =>
    createCampaign(
      db!,
      config,
      {
        rolloutId: rollout.id,
        selection: { kind: 'everyone', filter: { sort: 'user' }, userIds: [] },
        reminderDays: [],
        createdBy: 'operator:test',
      },
      Date.now(),
    )
  return { db, first, start, campaign, procs }
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function outboxRows(db: Db) {
  return db.selectFrom('mail_outbox').select(['to_address', 'status', 'reason', 'attempts']).orderBy('id').execute()
}

const settled = (db: Db, people: number) => async () => {
  const rows = await outboxRows(db)
  return rows.length === people && rows.every((r) => r.status === 'sent' || r.status === 'failed')
}

const pgUrl = testPostgresUrl()

t.test('two instances on one PostgreSQL schema: each person receives the step exactly once', async (t) => {
  if (!pgUrl) {
    t.pass('PostgreSQL only: set TEST_DATABASE_URL')
    return
  }
  // More than one lease batch (100 rows), and slow enough (300 × 100 ms / 5 connections = 6 s for
  // one instance) that the other instance's 5-second pass joins in.
  const people = 300
  const receiver = await startReceiver(t)
  receiver.delays.replyMs = 100
  const { db, first, start, campaign } = await setup(t, people, receiver)
  const second = await start('B')
  await campaign()
  await waitFor('every message', settled(db, people))
  const rows = await outboxRows(db)
  t.same(new Set(rows.map((r) => r.status)), new Set(['sent']), 'every row sent')
  t.equal(rows.length, people, 'one row per person: the campaign was expanded once')
  t.equal(receiver.taken.size, people, 'everyone received it')
  t.same(
    [...receiver.taken].filter(([, n]) => n !== 1),
    [],
    'nobody received it twice',
  )
  // Both really sent: each log line "email sent" is one message.
  const sent = (p: Proc) => p.logs().filter((l) => l.msg === 'email sent').length
  // The last lines may still be on their way through the pipes.
  await waitFor('the log lines', () => sent(first) + sent(second) >= people, 5_000).catch(() => {})
  t.equal(sent(first) + sent(second), people, 'the two logs add up to one message per person')
  t.ok(sent(first) > 0 && sent(second) > 0, `both instances sent (${sent(first)} and ${sent(second)})`)
})

t.test('kill -9 before the end of data: the restarted process sends it again, everyone exactly once', async (t) => {
  const people = 30
  const receiver = await startReceiver(t)
  receiver.delays.rcptMs = 300 // the kill lands while RCPT waits: the end of data was never sent
  const { db, first, start, campaign } = await setup(t, people, receiver)
  await campaign()
  await waitFor('a few messages taken, others mid-send', () => receiver.taken.size >= 5 && receiver.holding.size > 0)
  first.child.kill('SIGKILL')
  await new Promise((r) => first.child.once('exit', r))
  // A row whose Message-ID is recorded had passed its end-of-data mark: with 5 connections, one may
  // have been between the server's reply and the 'sent' write when the kill landed (outcome unknown).
  const sending = await db
    .selectFrom('mail_outbox')
    .select(['to_address', 'message_id'])
    .where('status', '=', 'sending')
    .execute()
  const midSend = sending.filter((r) => r.message_id === null)
  const pastDot = sending.filter((r) => r.message_id !== null).map((r) => r.to_address)
  t.ok(midSend.length > 0, `rows were mid-send at the kill: ${midSend.map((r) => r.to_address).join(', ')}`)
  receiver.delays.rcptMs = 0
  await start('A2')
  await waitFor('every message', settled(db, people))
  const rows = await outboxRows(db)
  t.same(
    rows
      .filter((r) => r.status !== 'sent')
      .map((r) => r.to_address)
      .sort(),
    [...pastDot].sort(),
    'every row sent but those already past their end of data at the kill',
  )
  for (const r of rows.filter((x) => x.status !== 'sent'))
    t.match(r, { status: 'failed', reason: /outcome unknown/ }, `${r.to_address}: failed as unknown, not sent again`)
  t.same(
    rows.map((r) => r.to_address).filter((a) => !receiver.taken.has(a) && !pastDot.includes(a)),
    [],
    'everyone received it (but, perhaps, a message the kill cut off at its reply)',
  )
  t.same(
    [...receiver.taken].filter(([, n]) => n !== 1),
    [],
    'nobody twice',
  )
  for (const r of midSend)
    t.match(
      rows.find((x) => x.to_address === r.to_address),
      { status: 'sent', attempts: 2 },
      `${r.to_address}, mid-send at the kill, sent again once`,
    )
})

t.test(
  'kill -9 after the end of data, before the reply: that row is failed as unknown and never sent again',
  async (t) => {
    const people = 30
    const receiver = await startReceiver(t)
    receiver.delays.replyMs = 400 // the kill lands while the server holds its reply to the end of data
    const { db, first, start, campaign } = await setup(t, people, receiver)
    await campaign()
    await waitFor(
      'a few messages taken, one awaiting its reply',
      () => receiver.taken.size >= 5 && receiver.holding.size > 0,
    )
    first.child.kill('SIGKILL')
    await new Promise((r) => first.child.once('exit', r))
    receiver.delays.replyMs = 0
    await start('A2')
    await waitFor('every message', settled(db, people))
    // The receiver's held replies fire after the kill: mostly on a closed connection, not taken.
    await waitFor('the held replies', () => receiver.holding.size === 0, 5_000)
    const rows = await outboxRows(db)
    const failed = rows.filter((r) => r.status === 'failed')
    t.ok(failed.length >= 1, `at least one row was awaiting its reply at the kill (${failed.length})`)
    t.ok(failed.length <= 5, 'no more than the sends in flight (5 at a time)')
    for (const f of failed) t.match(f.reason, /interrupted after the message was handed to the server/)
    t.same(
      receiver.lostAtReply.filter((a) => !failed.some((f) => f.to_address === a)),
      [],
      'every message whose reply never went out is a failed row',
    )
    t.same(
      rows.filter((r) => r.status === 'sent' && receiver.taken.get(r.to_address) !== 1).map((r) => r.to_address),
      [],
      'everyone else received it, once',
    )
    // A failed row's message may still have been taken: the server's reply can leave just before
    // the kill, or before the server notices the closed connection. Unknown means either; what
    // must hold is that it is never tried again.
    t.same(
      failed.filter((f) => f.attempts !== 1).map((f) => f.to_address),
      [],
      'a message whose outcome was unknown is never tried again',
    )
    t.same(
      [...receiver.taken].filter(([, n]) => n !== 1),
      [],
      'nobody twice',
    )
  },
)
