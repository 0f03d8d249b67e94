// Reports emailed to REPORT_EMAIL_TO through the mail outbox, checked at a real SMTP server on
// loopback: both parts with the coverage definition, the HTML report attached, one message per
// reader and run slot (a second attempt at the slot mails nobody again), nothing without readers;
// and the funnel in every report format.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { loadConfig } from '../../src/config.js'
import { issueLink, linkContextFrom } from '../../src/links/links.js'
import { queueReportEmails, reportDedupeKey } from '../../src/mail/report-mail.js'
import { summaryTable } from '../../src/reports/formats.js'
import { manualSlotKey, runReport } from '../../src/reports/runs.js'
import { COVERAGE_DEFINITION } from '../../src/rollouts/coverage.js'
import { startTestApp } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { header, startSmtp } from '../helpers/smtp.js'
import { createMember, createRollout } from '../links/fixtures.js'
import { memoryLog, seedCoverage } from './fixtures.js'

const iso = (s: string) => Date.parse(s)

/** An apps file with one real Carta app, so a production configuration gets as far as email. */
function productionAppsFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sl-apps-')), 'apps.json')
  const app = {
    key: 'production-v1',
    environment: 'production',
    clientId: 'client-1',
    clientSecretEnv: 'CARTA_V1_SECRET',
    authBaseUrl: 'https://login.app.carta.com',
    apiBaseUrl: 'https://api.carta.com',
    scopes: ['read_user_info'],
    current: true,
  }
  writeFileSync(file, JSON.stringify({ apps: [app] }))
  return file
}

/**
 * The decoded body of the MIME part with this content type, found by its boundary (RFC 2046
 * §5.1.1), so a body line starting with "--" (the summary's table rule) does not end it.
 */
function part(raw: string, contentType: string): string | null {
  const boundaries = [...raw.matchAll(/boundary="?([^";\r\n]+)"?/gi)].map((m) => m[1]!)
  for (const boundary of boundaries) {
    for (const chunk of raw.split(`--${boundary}`)) {
      const at = chunk.search(/\r?\n\r?\n/)
      if (at < 0) continue
      const head = chunk.slice(0, at).replace(/\r?\n[ \t]+/g, ' ')
      if (!new RegExp(`^Content-Type: ${contentType.replace('/', '\\/')}`, 'im').test(head)) continue
      if (/^Content-Disposition: attachment/im.test(head)) continue
      let body = chunk
        .slice(at)
        .replace(/^\r?\n\r?\n/, '')
        .replace(/\r?\n$/, '')
      if (/quoted-printable/i.test(head))
        body = Buffer.from(
          body
            .replace(/=\r?\n/g, '')
            .replace(/=([0-9A-F]{2})/g, (_s, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
          'latin1',
        ).toString('utf8')
      else if (/base64/i.test(head)) body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
      return body.replace(/\r\n/g, '\n')
    }
  }
  return null
}

async function outbox(app: Awaited<ReturnType<typeof startTestApp>>) {
  return app.db.selectFrom('mail_outbox').selectAll().orderBy('id').execute()
}

t.test('REPORT_EMAIL_TO is checked at start, naming the variable', async (t) => {
  const base = { NODE_ENV: 'test', DATA_DIR: '/tmp/scope-ledger-report-mail-config' }
  t.throws(() => loadConfig({ ...base, REPORT_EMAIL_TO: 'ann@example.com, not-an-address' }), /REPORT_EMAIL_TO must be/)
  t.throws(() => loadConfig({ ...base, REPORT_EMAIL_TO: 'Ann <ann@example.com>' }), /REPORT_EMAIL_TO/)
  t.throws(
    () =>
      loadConfig({
        ...base,
        NODE_ENV: 'production',
        PUBLIC_URL: 'https://ledger.example.com',
        SESSION_SECRET: 'x'.repeat(32),
        LINK_SIGNING_SECRET: 'y'.repeat(32),
        TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
        CARTA_APPS_FILE: productionAppsFile(),
        CARTA_V1_SECRET: 'a',
        REPORT_EMAIL_TO: 'ann@example.com',
      }),
    /SMTP_URL is required when NODE_ENV=production and REPORT_EMAIL_TO is set/,
  )
  t.same(
    loadConfig({ ...base, REPORT_EMAIL_TO: ' ann@example.com,bob@example.com,,ANN@example.com ' }).reports.emailTo,
    ['ann@example.com', 'bob@example.com'],
  )
  t.same(loadConfig(base).reports.emailTo, [], 'unset: nobody')
})

t.test('a scheduled run mails each reader once: summary in both parts, the HTML report attached', async (t) => {
  const smtp = await startSmtp(t)
  const clock = new ManualClock(iso('2025-01-15T05:59:00Z'))
  const app = await startTestApp(t, {
    clock,
    env: {
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Scope Ledger <ledger@example.com>',
      MAIL_RATE_PER_SECOND: '0',
      REPORT_CRON: '0 6 * * *',
      REPORT_TIMEZONE: 'UTC',
      REPORT_EMAIL_TO: 'cfo@example.com, ops@example.com',
    },
  })
  await seedCoverage(app.db, clock.now())
  const scheduler = app.app.jobs.get('reports').scheduler
  clock.set(iso('2025-01-15T06:00:01Z'))
  const outcome = await scheduler.tick()
  t.equal(outcome?.status, 'succeeded')
  if (outcome?.status !== 'succeeded') return
  t.equal(outcome.mailQueued, 2, 'one message per reader queued by the run')
  const rows = await outbox(app)
  t.same(
    rows.map((r) => [r.kind, r.to_address, r.dedupe_key]),
    [
      ['report', 'cfo@example.com', reportDedupeKey('2025-01-15T06:00:00.000Z', 'cfo@example.com')],
      ['report', 'ops@example.com', reportDedupeKey('2025-01-15T06:00:00.000Z', 'ops@example.com')],
    ],
  )

  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 2, 'both readers received it')
  t.same(smtp.received.map((m) => m.to).sort(), [['cfo@example.com'], ['ops@example.com']])
  const raw = smtp.received.find((m) => m.to[0] === 'cfo@example.com')!.raw
  t.equal(header(raw, 'Subject'), 'Scope coverage report 2025-01-15 06:00 UTC')
  t.match(header(raw, 'From') ?? '', 'ledger@example.com')
  const text = part(raw, 'text/plain')
  t.ok(text, 'a plain-text part')
  t.match(text, summaryTable(outcome.document), 'the text part carries the terminal summary')
  t.match(text, COVERAGE_DEFINITION, 'with the one coverage definition')
  t.match(text, /Cap table +10 +4 +4 +2 +40\.0%/)
  const html = part(raw, 'text/html')
  t.ok(html, 'an HTML part')
  t.match(html, COVERAGE_DEFINITION)
  t.match(html, />Cap table</)
  t.match(html, />40\.0%</)
  const fileName = outcome.files.html!
  t.match(raw, new RegExp(`Content-Disposition: attachment;\\s+filename=${fileName.replace(/\./g, '\\.')}`))
  // The attachment is the report file itself, byte for byte.
  const attachment = /Content-Disposition: attachment;[^\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([\s\S]*?)\r?\n--/.exec(raw)
  t.ok(attachment)
  const decoded = Buffer.from(attachment![1]!.replace(/\s+/g, ''), 'base64').toString('utf8')
  t.equal(decoded, readFileSync(join(app.config.reports.dir, fileName), 'utf8'), 'the attached file is the report')

  // The same slot attempted again (another instance, or a retry): no run, no message.
  t.equal((await scheduler.runSlot(iso('2025-01-15T06:00:00Z')))?.status, 'skipped')
  // Even a retried run that got as far as queueing again for this slot adds no row.
  const again = await queueReportEmails(app.db, {
    slotKey: '2025-01-15T06:00:00.000Z',
    recipients: ['cfo@example.com', 'OPS@example.com'],
    message: { subject: 'again', text: 'again', html: '<p>again</p>' },
    now: clock.now(),
  })
  t.equal(again, 0, 'deduped per run slot and reader')
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 2, 'nobody is mailed twice for one slot')
  t.same(
    (await outbox(app)).map((r) => r.status),
    ['sent', 'sent'],
  )
})

t.test('a report run on demand mails too; without REPORT_EMAIL_TO nothing is queued', async (t) => {
  const smtp = await startSmtp(t)
  const clock = new ManualClock(iso('2025-01-15T06:00:00Z'))
  const env = { SMTP_URL: smtp.url, MAIL_RATE_PER_SECOND: '0' }
  const app = await startTestApp(t, { clock, env: { ...env, REPORT_EMAIL_TO: 'cfo@example.com' } })
  await seedCoverage(app.db, clock.now())
  const { log } = memoryLog()
  const manual = await runReport({ ...app.app.deps, log }, { slotKey: manualSlotKey(), trigger: 'manual' })
  t.equal(manual.status, 'succeeded')
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 1)
  t.match(part(smtp.received[0]!.raw, 'text/plain'), 'run on demand')

  const quiet = await startTestApp(t, { clock, env })
  await seedCoverage(quiet.db, clock.now())
  const run = await runReport({ ...quiet.app.deps, log }, { slotKey: manualSlotKey(), trigger: 'manual' })
  t.equal(run.status, 'succeeded')
  if (run.status === 'succeeded') t.equal(run.mailQueued, 0)
  t.equal((await outbox(quiet)).length, 0, 'no reader: no row')
  await quiet.app.jobs.run('mail')
  t.equal(smtp.received.length, 1, 'and nothing more was sent')
})

t.test('a report after one link was opened shows opened=1 in every format', async (t) => {
  const clock = new ManualClock(iso('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { name: 'Cap table summary', now: clock.now() })
  const member = (carta: string, email: string) =>
    createMember(
      app.app.deps,
      { cartaUserId: carta, email, appKey: 'production-v1', granted: ['read_issuer_info', 'read_user_info'] },
      clock.now(),
    )
  const ann = await member('c-ann', 'ann@example.com')
  const bob = await member('c-bob', 'bob@example.com')
  const context = linkContextFrom(app.config, clock)
  const annLink = await issueLink(app.db, context, { rolloutId: rollout.id, userId: ann, issuedBy: 'operator:test' })
  await issueLink(app.db, context, { rolloutId: rollout.id, userId: bob, issuedBy: 'operator:test' })
  const page = await new Agent().get(annLink.url)
  t.equal(page.status, 200, 'Ann opens her link page')

  const { log } = memoryLog()
  const outcome = await runReport({ ...app.app.deps, log }, { slotKey: manualSlotKey(), trigger: 'manual' })
  t.equal(outcome.status, 'succeeded')
  if (outcome.status !== 'succeeded') return
  const read = (f: 'json' | 'csv' | 'html') => readFileSync(join(app.config.reports.dir, outcome.files[f]!), 'utf8')
  const json = JSON.parse(read('json')) as { rollouts: Array<{ funnel: Record<string, number> }> }
  t.match(json.rollouts[0]!.funnel, { issued: 2, opened: 1, continued: 0, emailed: 0 })
  t.match(read('csv'), /,Cap table summary,funnel,opened,1\r?\n/)
  t.match(read('csv'), /,Cap table summary,funnel,issued,2\r?\n/)
  t.match(read('html'), /<td>opened the link<\/td><td class="n" data-step="opened">1<\/td>/)
  t.match(summaryTable(outcome.document), /Cap table summary: issued=2 emailed=0 failed=0 opened=1 /)
})
