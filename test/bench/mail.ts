// `npm run bench:mail`: an email campaign at scale. Seeds (or reuses) a ledger of BENCH_USERS
// end users (test/bench/seed.ts, default 1,000,000) in its own database, builds a rollout for
// production-v2 and leaves an email address to exactly BENCH_MAIL_MESSAGES of the people lacking
// it (default 100,000; the others lacking have none, so the campaign walks the whole lacking list
// and queues that many). Then, against the real app over HTTP and an SMTP server in this process
// (the smtp-server package, discarding what it receives):
//   1. the operator's action: POST the campaign form as a signed-in operator (target < 10 s);
//   2. the background expansion into outbox rows (what the mail job runs), timed;
//   3. delivery at a configured rate for BENCH_MAIL_RATE_SECONDS (checks the rate holds);
//   4. delivery of the rest with the rate unlimited: messages per second;
//   5. the rollout page's funnel queries (median) and the page itself over HTTP, at that size.
// Prints peak RSS per phase (sampled) and for the whole process (seeding included).
//   BENCH_USERS=100000 BENCH_MAIL_MESSAGES=10000 npm run bench:mail     smaller
//   BENCH_MAIL_RATE=200 BENCH_MAIL_RATE_SECONDS=5 npm run bench:mail    the rate-limited phase
//   DATABASE_URL=postgres://… DATABASE_SEARCH_PATH=benchmail npm run bench:mail   on PostgreSQL
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { sql } from 'kysely'
import { SMTPServer } from 'smtp-server'
import { buildApp } from '../../src/app.js'
import { syncApps } from '../../src/apps/apps.js'
import { systemClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { isPostgres } from '../../src/db/dialect.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { expandCampaigns } from '../../src/mail/campaigns.js'
import { rolloutFunnel } from '../../src/mail/funnel.js'
import { processOutbox } from '../../src/mail/outbox.js'
import { createMailer } from '../../src/mail/transport.js'
import { buildUntilReady, startRollout } from '../../src/rollouts/rollouts.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { signedInOperator } from '../helpers/ledger.js'
import { seedOnce } from './seed.js'
import { benchDataDir, servedBenchConfig } from './served-config.js'

const USERS = Number(process.env.BENCH_USERS ?? 1_000_000)
const MESSAGES = Number(process.env.BENCH_MAIL_MESSAGES ?? 100_000)
const RATE = Number(process.env.BENCH_MAIL_RATE ?? 25)
const RATE_SECONDS = Number(process.env.BENCH_MAIL_RATE_SECONDS ?? 5)
const RUNS = Math.max(5, Number(process.env.BENCH_RUNS ?? 20))
const ROLLOUT_NAME = 'bench mail: production-v2'
const ACTION_TARGET_MS = 10_000

// --- the SMTP server: counts what it accepts, keeps only the recipients (to check "once each") ---
const received = new Map<string, number>()
let receivedTotal = 0
const smtp = new SMTPServer({
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, session, callback) {
    stream.on('data', () => {})
    stream.on('end', () => {
      receivedTotal++
      for (const r of session.envelope.rcptTo) received.set(r.address, (received.get(r.address) ?? 0) + 1)
      callback()
    })
  },
})
await new Promise<void>((done) => smtp.listen(0, '127.0.0.1', done))
const smtpPort = (smtp.server.address() as AddressInfo).port

const { config, port } = await servedBenchConfig({
  // Its own file: the addresses are rewritten below, which the other benches must not see.
  DATABASE_PATH: process.env.DATABASE_PATH ?? resolve(benchDataDir, 'mail.db'),
  SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
  MAIL_FROM: 'Scope Ledger <ledger@example.com>',
  MAIL_RATE_PER_SECOND: '0',
  RATE_LIMIT_SIGN_IN_PER_MINUTE: '1000',
})
const db = await openDatabase(config.database)
const postgres = isPostgres(db)
console.log(
  `Scope Ledger mail bench on ${postgres ? 'postgresql' : `sqlite (${config.database.kind === 'sqlite' ? config.database.path : ''})`}: ` +
    `${USERS.toLocaleString('en-US')} users, ${MESSAGES.toLocaleString('en-US')} messages`,
)

// --- peak RSS, sampled every 50 ms, per phase. On SQLite the server maps up to 1 GiB of the
// database file (db/dialect.ts): those pages count in RSS but are the file's, clean and given back
// under memory pressure, so the anonymous part (the process's own memory) is printed beside it.
let phasePeak = 0
let phaseAnonPeak = 0
/** RssAnon from /proc/self/status (Linux); 0 where it cannot be read. */
function anonymousRss(): number {
  try {
    return Number(/RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}
const sample = () => {
  phasePeak = Math.max(phasePeak, process.memoryUsage.rss())
  phaseAnonPeak = Math.max(phaseAnonPeak, anonymousRss())
}
const sampler = setInterval(sample, 50)
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`
async function phase<T>(
  name: string,
  fn: () => Promise<T>,
): Promise<{ value: T; ms: number; peak: number; anonPeak: number }> {
  phasePeak = 0
  phaseAnonPeak = 0
  sample()
  const t0 = performance.now()
  const value = await fn()
  const ms = performance.now() - t0
  sample()
  console.log(
    `${name.padEnd(58)} ${(ms / 1000).toFixed(2).padStart(8)} s   peak RSS ${mb(phasePeak)} (anonymous ${mb(phaseAnonPeak)})`,
  )
  return { value, ms, peak: phasePeak, anonPeak: phaseAnonPeak }
}

await migrateToLatest(db)
const now = Date.now()
await syncApps(db, config.apps, now)
await seedOnce(db, { users: USERS, now: Date.UTC(2026, 0, 15) }, (line) => console.log(line))

// The rollout (built once, reused).
const v2 = await db
  .selectFrom('oauth_apps')
  .select(['id', 'scopes'])
  .where('key', '=', 'production-v2')
  .executeTakeFirstOrThrow()
let rollout = await db
  .selectFrom('rollouts')
  .select('id')
  .where('name', '=', ROLLOUT_NAME)
  .where('status', '=', 'active')
  .executeTakeFirst()
if (!rollout) {
  const id = await startRollout(db, { name: ROLLOUT_NAME, appId: v2.id, scopes: v2.scopes.split(' ') }, 'bench', now)
  const build = await buildUntilReady(db, id)
  console.log(`Built the rollout's membership in ${(build.totalMs / 1000).toFixed(1)} s`)
  await (postgres ? sql`analyze rollout_members, rollout_member_missing, rollout_counts` : sql`ANALYZE`).execute(db)
  rollout = { id }
}
const rid = rollout.id

// A clean slate for email: no campaigns, messages, opt-outs or links of this rollout.
await db.deleteFrom('mail_outbox').execute()
await db.deleteFrom('mail_campaigns').execute()
await db.deleteFrom('mail_opt_outs').execute()
await db.deleteFrom('reauth_links').where('rollout_id', '=', rid).execute()

// Exactly MESSAGES people lacking the rollout's scopes have an address: the first MESSAGES by id.
const lacking = db
  .selectFrom('rollout_members')
  .select('user_id')
  .where('rollout_id', '=', rid)
  .where('needs_action', '=', 1)
const lackingCount = Number(
  (
    await db
      .selectFrom('rollout_members')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('rollout_id', '=', rid)
      .where('needs_action', '=', 1)
      .executeTakeFirstOrThrow()
  ).n,
)
const cutoffRow = await lacking
  .orderBy('user_id')
  .offset(Math.max(0, Math.min(MESSAGES, lackingCount) - 1))
  .limit(1)
  .executeTakeFirst()
const cutoff = cutoffRow?.user_id ?? 0
await phase('addresses: first N lacking people only (setup, not timed)', async () => {
  await db.updateTable('end_users').set({ email: null }).where('id', '>', cutoff).where('id', 'in', lacking).execute()
  await db
    .updateTable('end_users')
    .set({ email: sql<string>`'user' || id || '@example' || (id % 97) || '.com'` })
    .where('id', '<=', cutoff)
    .where('email', 'is', null)
    .execute()
})
const expected = Math.min(MESSAGES, lackingCount)
console.log(
  `The rollout: ${lackingCount.toLocaleString('en-US')} people lacking, ${expected.toLocaleString('en-US')} of them with an address\n`,
)

// --- 1. the operator's action over HTTP ---
const app = await buildApp({ config, db, clock: systemClock, backgroundJobs: false })
await app.listen({ host: '127.0.0.1', port })
const base = `http://127.0.0.1:${port}`
const ops = await signedInOperator(db, base, Date.now(), `bench${Date.now()}`)
const preview = await phase('preview page (GET …/mail?selection=everyone)', () =>
  ops.get(`${base}/admin/rollouts/${rid}/mail?selection=everyone`),
)
const willSend = /id="will-send">([\d,]+)</.exec(preview.value.text)?.[1]
console.log(`  the preview counts ${willSend ?? '?'} to be emailed`)
const action = await phase("operator's action: POST the campaign form (303)", () =>
  ops.post(`${base}/admin/rollouts/${rid}/mail`, {
    _csrf: hiddenField(preview.value.text, '_csrf'),
    selection: 'everyone',
  }),
)
if (action.value.status !== 303) throw new Error(`the campaign form answered ${action.value.status}`)
await phase('the rollout page it leads to (GET)', () => ops.follow(action.value))

// --- 2. the background expansion (the mail job's first part), run here to completion ---
const expansion = await phase('background: queue the outbox rows (campaign expansion)', async () => {
  let queued = 0
  for (;;) {
    queued += await expandCampaigns(db, () => Date.now())
    const left = await db
      .selectFrom('mail_campaigns')
      .select('id')
      .where('expand_status', '=', 'expanding')
      .executeTakeFirst()
    if (!left) return queued
  }
})
console.log(
  `  ${expansion.value.toLocaleString('en-US')} rows queued, ${(expansion.value / (expansion.ms / 1000)).toFixed(0)} rows/s`,
)
if (expansion.value !== expected) throw new Error(`expected ${expected} rows, queued ${expansion.value}`)

// --- 3. and 4. delivery ---
const mailer = createMailer(config.mail)!
const rated = await phase(`deliver at MAIL_RATE_PER_SECOND=${RATE} for ${RATE_SECONDS} s`, () =>
  processOutbox(
    { config: { ...config, mail: { ...config.mail, ratePerSecond: RATE } }, db, clock: systemClock, mailer },
    { budgetMs: RATE_SECONDS * 1000 },
  ),
)
// The limiter is a fixed one-second window: at most RATE sends start in each started second.
const ratedAllowed = RATE * Math.ceil(rated.ms / 1000)
console.log(
  `  ${rated.value.sent} sent in ${(rated.ms / 1000).toFixed(2)} s: ${(rated.value.sent / (rated.ms / 1000)).toFixed(0)} messages/s ` +
    `(configured ${RATE}/s, so at most ${ratedAllowed})${rated.value.sent > ratedAllowed ? '   OVER THE RATE' : ''}`,
)
const unlimited = await phase('deliver the rest, rate unlimited (MAIL_RATE_PER_SECOND=0)', async () => {
  let sent = 0
  for (;;) {
    const run = await processOutbox({ config, db, clock: systemClock, mailer }, { budgetMs: 60_000 })
    sent += run.sent
    if (run.sent + run.failed + run.retry + run.skipped === 0) return sent
  }
})
const perSecond = unlimited.value / (unlimited.ms / 1000)
console.log(`  ${unlimited.value.toLocaleString('en-US')} sent, ${perSecond.toFixed(0)} messages/s`)
mailer.close()
const twice = [...received.values()].filter((n) => n > 1).length
const statuses = await db
  .selectFrom('mail_outbox')
  .select((eb) => ['status', eb.fn.countAll().as('n')])
  .groupBy('status')
  .execute()
console.log(
  `  the server received ${receivedTotal.toLocaleString('en-US')} messages for ${received.size.toLocaleString('en-US')} people, ` +
    `${twice} twice; outbox ${statuses.map((s) => `${s.status} ${s.n}`).join(', ')}`,
)
if (receivedTotal !== expected || twice !== 0) throw new Error('not every person received exactly one message')

// --- 5. the funnel at this size ---
function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]!
}
async function timeIt(name: string, fn: () => Promise<string>): Promise<void> {
  let note = await fn() // warm-up
  const samples: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    note = await fn()
    samples.push(performance.now() - t0)
  }
  console.log(`${name.padEnd(58)} median ${median(samples).toFixed(1).padStart(8)} ms   ${note}`)
}
console.log('')
await timeIt('funnel queries (rolloutFunnel, 11 counts)', async () => {
  const f = await rolloutFunnel(db, rid, Date.now())
  return `issued ${f.issued}, emailed ${f.emailed}, opened ${f.opened}`
})
await timeIt('the rollout page over HTTP (GET /admin/rollouts/:id)', async () => {
  const page = await ops.get(`${base}/admin/rollouts/${rid}`)
  if (page.status !== 200) throw new Error(`rollout page ${page.status}`)
  return `${page.text.length} bytes`
})

clearInterval(sampler)
console.log(
  `\nOperator's action ${(action.ms / 1000).toFixed(2)} s (target < ${ACTION_TARGET_MS / 1000} s${action.ms > ACTION_TARGET_MS ? ', MISSED' : ''}); ` +
    `queued ${expansion.value.toLocaleString('en-US')} in ${(expansion.ms / 1000).toFixed(1)} s in the background; ` +
    `delivered ${perSecond.toFixed(0)} messages/s unlimited; peak RSS while delivering ${mb(Math.max(rated.peak, unlimited.peak))} ` +
    `(anonymous ${mb(Math.max(rated.anonPeak, unlimited.anonPeak))}), ` +
    `whole process ${mb(process.resourceUsage().maxRSS * 1024)}`,
)
await app.close()
await new Promise<void>((done) => smtp.close(() => done()))
await db.destroy()
process.exitCode = action.ms > ACTION_TARGET_MS || rated.value.sent > ratedAllowed ? 1 : 0
