// The outbox under stress, on either engine (TEST_DATABASE_URL for PostgreSQL): two instances
// sending from the same queue never send one row twice, and a process that stops mid-campaign
// (rows leased, one in the middle of its SMTP conversation) neither loses the rest nor resends
// the one whose outcome is unknown.
import t, { type Test } from 'tap'
import { ManualClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { createCampaign, expandCampaigns } from '../../src/mail/campaigns.js'
import { processOutbox } from '../../src/mail/outbox.js'
import { createMailer } from '../../src/mail/transport.js'
import { startTestApp } from '../helpers/app.js'
import { startSmtp } from '../helpers/smtp.js'
import { createMember, createRollout } from '../links/fixtures.js'

async function setup(t: Test, people: number) {
  const smtp = await startSmtp(t)
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, {
    clock,
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'ledger@example.com', MAIL_RATE_PER_SECOND: '0' },
  })
  const rollout = await createRollout(app.db, { now: clock.now() })
  for (let i = 0; i < people; i++)
    await createMember(
      app.app.deps,
      {
        cartaUserId: `c-${i}`,
        email: `p${i}@example.com`,
        appKey: 'production-v1',
        granted: ['read_issuer_info', 'read_user_info'],
      },
      clock.now(),
    )
  const campaignId = await createCampaign(
    app.db,
    app.config,
    {
      rolloutId: rollout.id,
      selection: { kind: 'everyone', filter: { sort: 'user' }, userIds: [] },
      reminderDays: [],
      createdBy: 'operator:test',
    },
    clock.now(),
  )
  t.equal(await expandCampaigns(app.db, () => clock.now()), people, 'every person queued once')
  return { smtp, clock, app, rollout, campaignId }
}

function perRecipient(received: Array<{ to: string[] }>): Map<string, number> {
  const counts = new Map<string, number>()
  for (const m of received) for (const to of m.to) counts.set(to, (counts.get(to) ?? 0) + 1)
  return counts
}

t.test('two instances sending from one queue: every person exactly once', async (t) => {
  const people = 60
  const { smtp, clock, app } = await setup(t, people)
  // A second instance: its own connection pool on the same database (schema), its own mailer.
  const other = await openDatabase(app.config.database)
  t.teardown(() => other.destroy())
  const mailerA = createMailer(app.config.mail)!
  const mailerB = createMailer(app.config.mail)!
  t.teardown(() => {
    mailerA.close()
    mailerB.close()
  })
  const [a, b] = await Promise.all([
    processOutbox({ config: app.config, db: app.db, clock, mailer: mailerA }, { concurrency: 3 }),
    processOutbox({ config: app.config, db: other, clock, mailer: mailerB }, { concurrency: 3 }),
  ])
  t.equal(a.sent + b.sent, people, 'all sent between them')
  t.equal(smtp.received.length, people, 'the server received each message once')
  t.ok(
    [...perRecipient(smtp.received).values()].every((n) => n === 1),
    'nobody twice',
  )
  const statuses = await app.db.selectFrom('mail_outbox').select('status').distinct().execute()
  t.same(
    statuses.map((s) => s.status),
    ['sent'],
  )
  // A third pass finds nothing to do.
  const again = await processOutbox({ config: app.config, db: other, clock, mailer: mailerB })
  t.equal(again.sent, 0)
})

t.test(
  'a process stopped mid-campaign: leased rows go out after the lease, one mid-send is resent only if its end of data was never sent',
  async (t) => {
    const people = 12
    const { smtp, clock, app } = await setup(t, people)
    const rows = await app.db.selectFrom('mail_outbox').select(['id', 'to_address']).orderBy('id').execute()
    // What kill -9 leaves behind: five rows leased by the dead process, one of them handed to SMTP.
    const leased = rows.slice(0, 5).map((r) => r.id)
    await app.db
      .updateTable('mail_outbox')
      .set({ lock_owner: 'dead-process', lock_until: clock.now() + 5 * 60_000 })
      .where('id', 'in', leased)
      .execute()
    await app.db
      .updateTable('mail_outbox')
      .set({ status: 'sending', attempts: 1, message_id: '<handed-over@example.com>' })
      .where('id', '=', leased[0]!)
      .execute()
    // And one handed to SMTP whose end of data was never sent: the server never took it.
    await app.db
      .updateTable('mail_outbox')
      .set({ status: 'sending', attempts: 1 })
      .where('id', '=', leased[1]!)
      .execute()

    const mailer = createMailer(app.config.mail)!
    t.teardown(() => mailer.close())
    const deps = { config: app.config, db: app.db, clock, mailer }
    const first = await processOutbox(deps)
    t.equal(first.sent, people - 5, 'the restarted process sends what nobody held')
    t.equal(first.interrupted, 0, 'the dead lease is still running')

    clock.advance(5 * 60_000 + 1)
    const second = await processOutbox(deps)
    t.equal(second.interrupted, 2, 'both rows caught mid-send are seen as interrupted')
    t.equal(second.sent, 4, 'the rows only leased, and the one whose end of data was never sent, go out')
    const interrupted = await app.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('id', '=', leased[0]!)
      .executeTakeFirstOrThrow()
    t.equal(interrupted.status, 'failed')
    t.match(interrupted.reason, /interrupted after the message was handed to the server/)
    const resent = await app.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('id', '=', leased[1]!)
      .executeTakeFirstOrThrow()
    t.equal(resent.status, 'sent', 'the one whose end of data was never sent is sent again')
    t.equal(resent.attempts, 2)
    t.equal(smtp.received.length, people - 1)
    t.notOk(
      smtp.received.some((m) => m.to.includes(rows[0]!.to_address)),
      'the message whose outcome is unknown is not sent again',
    )
    t.ok(
      [...perRecipient(smtp.received).values()].every((n) => n === 1),
      'nobody twice',
    )
  },
)
