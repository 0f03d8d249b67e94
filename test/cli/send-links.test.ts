// `send-links`: the rollout page's campaign from the command line: counts, --dry-run, --wait
// delivering through a real SMTP server, and exit codes for bad input and failed messages.
import t from 'tap'
import { sendLinksCommand } from '../../src/cli/send-links.js'
import { ManualClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { startTestApp } from '../helpers/app.js'
import { startSmtp } from '../helpers/smtp.js'
import { createMember, createRollout } from '../links/fixtures.js'

t.test('send-links counts, queues and with --wait delivers; 1 when a message failed', async (t) => {
  const smtp = await startSmtp(t)
  const clock = new ManualClock(Date.now())
  const app = await startTestApp(t, {
    clock,
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'ledger@example.com', MAIL_RATE_PER_SECOND: '0' },
  })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const old = ['read_issuer_info', 'read_user_info']
  for (const email of ['ann@example.com', 'reject@example.com'])
    await createMember(app.app.deps, { cartaUserId: email, email, appKey: 'production-v1', granted: old }, clock.now())
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const lines: string[] = []
  const errors: string[] = []
  const original = console.error
  console.error = (m: string) => errors.push(m)
  t.teardown(() => {
    console.error = original
  })
  const out = (l: string) => lines.push(l)

  t.equal(await sendLinksCommand(['nope'], open, out), 2, 'a bad id is a usage error')
  t.match(errors.join('\n'), 'Usage: npm run cli -- send-links')
  t.equal(await sendLinksCommand([String(rollout.id), '--app', 'no-such-app'], open, out), 1)
  t.match(errors.join('\n'), 'There is no app "no-such-app"')

  t.equal(await sendLinksCommand([String(rollout.id), '--dry-run', '--app', 'production-v1'], open, out), 0)
  t.match(lines.at(-1), 'Would email 2 of 2 people')
  t.equal(smtp.received.length, 0, 'a dry run sends nothing')
  t.equal((await app.db.selectFrom('mail_outbox').selectAll().execute()).length, 0, 'and queues nothing')

  t.equal(await sendLinksCommand([String(rollout.id), '--wait'], open, out), 1, 'one message failed: exit 1')
  t.match(lines.join('\n'), /Campaign \d+: 2 emails queued/)
  t.match(lines.at(-1), 'sent 1, failed 1, skipped 0, waiting 0')
  t.same(
    smtp.received.map((m) => m.to[0]),
    ['ann@example.com'],
  )
  t.equal(await sendLinksCommand([String(rollout.id), '--dry-run'], open, out), 0)
  t.match(lines.at(-1), 'Would email 0 of 2 people', 'both were already emailed (or failed) for this rollout')
})
