// Delivery to a Slack-compatible webhook: a body with text + blocks, retries with backoff, a
// webhook that is down (connection refused) or slow (never answers) → failure recorded on the
// run, the schedule keeps going, and the URL's secret path never reaches the log.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { findRun, manualSlotKey, runReport } from '../../src/reports/runs.js'
import { ReportScheduler } from '../../src/reports/scheduler.js'
import { deliver } from '../../src/reports/webhook.js'
import { freePort, startTestApp } from '../helpers/app.js'
import { memoryLog, seedCoverage } from './fixtures.js'

const SECRET_PATH = '/services/T000/B000/SECRETSECRETSECRET'
const fast = { timeoutMs: 300, attempts: 3, backoffMs: 20 }

async function webhookServer(
  t: Teardown,
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ url: string; hits: string[] }> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      hits.push(body)
      handler(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}${SECRET_PATH}`, hits }
}
interface Teardown {
  teardown(fn: () => unknown): void
}

async function setup(t: Teardown, webhookUrl: string) {
  const clock = new ManualClock(Date.UTC(2025, 0, 15, 5, 0))
  const app = await startTestApp(t, { clock, env: { REPORT_WEBHOOK_URL: webhookUrl, REPORT_CRON: '0 6 * * *' } })
  await seedCoverage(app.db, clock.now())
  const mem = memoryLog()
  return { app, clock, mem, ctx: { db: app.db, config: app.config, clock, log: mem.log, delivery: fast } }
}

t.test('a working webhook gets a Slack-compatible summary; the run records "sent"', async (t) => {
  const hook = await webhookServer(t, (_req, res) => res.end('ok'))
  const { app, ctx, mem } = await setup(t, hook.url)
  const outcome = await runReport(ctx, { slotKey: manualSlotKey(), trigger: 'manual' })
  if (outcome.status !== 'succeeded') throw new Error('run failed')
  t.match(await outcome.delivery, { ok: true, attempts: 1 })
  t.match(await findRun(app.db, outcome.runId), { delivery_status: 'sent', delivery_error: null, delivery_attempts: 1 })
  const body = JSON.parse(hook.hits[0]!)
  t.match(
    body.text,
    /Scope coverage report[\s\S]*\*Cap table\*: 40\.0% covered \(4 of 10 members\), 4 lacking, 2 to reconnect/,
  )
  t.equal(body.blocks[0].type, 'header')
  t.match(body.blocks[1].text.text, '*Issuer info*: 70.0% covered')
  t.notMatch(JSON.stringify(mem.lines), 'SECRETSECRET', 'webhook path never logged')
  t.ok(mem.lines.some((l) => l.msg === 'report delivered to webhook' && l.obj.webhook === new URL(hook.url).origin))
})

t.test('a webhook that is down: three attempts with backoff, failure recorded, never thrown', async (t) => {
  const port = await freePort() // nothing listens here: connection refused
  const url = `http://127.0.0.1:${port}${SECRET_PATH}`
  const { app, ctx, mem } = await setup(t, url)
  const started = Date.now()
  const outcome = await runReport(ctx, { slotKey: manualSlotKey(), trigger: 'manual' })
  if (outcome.status !== 'succeeded') throw new Error('run failed')
  const result = await outcome.delivery
  t.match(result, { ok: false, attempts: 3, error: /ECONNREFUSED/ })
  t.ok(Date.now() - started >= 20 + 40, 'backed off between attempts (20 ms, then 40 ms)')
  const run = await findRun(app.db, outcome.runId)
  t.match(run, { status: 'succeeded', delivery_status: 'failed', delivery_attempts: 3, delivery_error: /ECONNREFUSED/ })
  t.notMatch(run!.delivery_error, 'SECRET', 'stored error names the origin only')
  t.notMatch(JSON.stringify(mem.lines), 'SECRETSECRET')
  t.ok(mem.lines.some((l) => l.level === 'warn' && l.msg === 'report delivery to webhook failed'))
})

t.test('a slow webhook times out per attempt; the scheduler records it and runs the next slot', async (t) => {
  const hook = await webhookServer(t, () => {}) // never answers
  const { app, clock, ctx } = await setup(t, hook.url)
  const scheduler = new ReportScheduler(ctx)
  clock.set(Date.UTC(2025, 0, 15, 6, 0, 1))
  const started = Date.now()
  const first = await scheduler.tick()
  t.equal(first?.status, 'succeeded', 'the report itself succeeded')
  t.ok(Date.now() - started >= 3 * 300, 'waited for each attempt to time out')
  t.equal(hook.hits.length, 3, 'three attempts reached the server')
  const run = await app.db.selectFrom('report_runs').selectAll().orderBy('id').executeTakeFirstOrThrow()
  t.match(run, { delivery_status: 'failed', delivery_error: /no answer from http:\/\/127\.0\.0\.1:\d+ within 300 ms/ })

  clock.set(Date.UTC(2025, 0, 16, 6, 0, 1))
  const second = await scheduler.tick()
  t.equal(second?.status, 'succeeded', 'next slot still runs')
  t.equal((await app.db.selectFrom('report_runs').select('id').execute()).length, 2)
})

t.test('deliver() does not retry a 4xx other than 429, retries 5xx', async (t) => {
  let status = 404
  const hook = await webhookServer(t, (_req, res) => {
    res.statusCode = status
    res.end()
  })
  t.match(await deliver(hook.url, { text: 'x' }, fast), { ok: false, attempts: 1, error: /HTTP 404/ })
  status = 503
  t.match(await deliver(hook.url, { text: 'x' }, fast), { ok: false, attempts: 3, error: /HTTP 503/ })
  t.equal(hook.hits.length, 4)
})
