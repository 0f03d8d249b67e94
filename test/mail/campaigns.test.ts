// Email through a real SMTP server on loopback: the preview's counts, the MIME that arrives
// (headers, both parts, the link, the RFC 8058 opt-out), transient and permanent failures, the
// one-click opt-out, reminders that stop once a person is covered, pause/resume, and the link's
// honest states as the person follows it.
import t, { type Test } from 'tap'
import { ManualClock } from '../../src/clock.js'
import { linkDedupeKey } from '../../src/mail/campaigns.js'
import { type TestApp, startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { addGrant } from '../helpers/ledger.js'
import { header, part, startSmtp } from '../helpers/smtp.js'
import { createMember, createRollout, operatorAgent } from '../links/fixtures.js'

const DAY = 24 * 60 * 60 * 1000
const OLD_SCOPES = ['read_issuer_info', 'read_user_info']

async function setup(t: Test, env: Record<string, string> = {}) {
  const smtp = await startSmtp(t)
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, {
    clock,
    env: {
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Scope Ledger <ledger@example.com>',
      MAIL_REPLY_TO: 'help@example.com',
      MAIL_RATE_PER_SECOND: '0',
      ...env,
    },
  })
  const rollout = await createRollout(app.db, { name: 'Cap table summary', now: clock.now() })
  const member = (cartaUserId: string, email: string, granted = OLD_SCOPES) =>
    createMember(app.app.deps, { cartaUserId, email, appKey: 'production-v1', granted }, clock.now())
  const ops = await operatorAgent(app)
  return { smtp, clock, app, rollout, member, ops }
}

async function startCampaign(
  app: TestApp,
  ops: Agent,
  rolloutId: number,
  form: Record<string, string | string[]> = {},
) {
  const preview = await ops.get(`${app.url}/admin/rollouts/${rolloutId}/mail?selection=everyone`)
  const res = await ops.post(`${app.url}/admin/rollouts/${rolloutId}/mail`, {
    _csrf: hiddenField(preview.text, '_csrf'),
    selection: 'everyone',
    ...form,
  })
  return { preview, res }
}

async function outbox(app: TestApp) {
  return app.db.selectFrom('mail_outbox').selectAll().orderBy('id').execute()
}

t.test(
  'everyone lacking: preview counts, then one message per person with both parts, the link and one-click opt-out',
  async (t) => {
    const { smtp, app, rollout, member, ops, clock } = await setup(t)
    const ann = await member('c-ann', 'ann@example.com')
    await app.db.updateTable('end_users').set({ name: 'Ann Archer' }).where('id', '=', ann).execute()
    const noEmail = await member('c-bob', 'bob@example.com')
    await app.db.updateTable('end_users').set({ email: null }).where('id', '=', noEmail).execute()
    const optedOut = await member('c-cat', 'cat@example.com')
    await app.db.insertInto('mail_opt_outs').values({ user_id: optedOut, at: clock.now(), source: 'page' }).execute()
    await member('c-dan', 'dan@example.com', rollout.scopes) // covered: not in the lacking list

    const { preview, res } = await startCampaign(app, ops, rollout.id, { reminders: 'on', reminder_days: '3, 7' })
    t.equal(preview.status, 200)
    t.match(preview.text, /id="will-send">1</, 'one person will be emailed')
    t.match(preview.text, /<div class="value">1<\/div><div class="label">skipped: no email address/)
    t.match(preview.text, /<div class="value">1<\/div><div class="label">skipped: opted out/)
    t.match(preview.text, 'Hello Ann Archer,', 'the preview shows the message')
    t.equal(smtp.received.length, 0, 'previewing sends nothing')
    t.equal((await outbox(app)).length, 0, 'and queues nothing')
    t.equal(res.status, 303)

    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 1, 'exactly one message reached the server')
    const msg = smtp.received[0]!
    t.same(msg.to, ['ann@example.com'])
    t.equal(msg.from, 'ledger@example.com')
    t.match(header(msg.raw, 'Subject'), 'Cap table summary: please update your Carta permissions')
    t.match(header(msg.raw, 'Reply-To'), 'help@example.com')
    t.match(header(msg.raw, 'Content-Type'), 'multipart/alternative')
    t.equal(header(msg.raw, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click', 'RFC 8058 one-click')
    const unsubscribe = /^<(http:\/\/127\.0\.0\.1:\d+\/mail\/unsubscribe\/[^>]+)>$/.exec(
      header(msg.raw, 'List-Unsubscribe') ?? '',
    )?.[1]
    t.ok(unsubscribe, 'List-Unsubscribe carries the opt-out URL')
    const text = part(msg.raw, 'text/plain') ?? ''
    const html = part(msg.raw, 'text/html') ?? ''
    t.match(text, 'Hello Ann Archer,', 'names the person')
    t.match(text, "See a summary of each company's cap table", 'the permission in plain words')
    t.match(text, 'read_issuer_capitalizationtablesummary')
    t.match(text, /The link works once, until 2025-03-15 10:00 UTC/, 'the expiry')
    const url = /(http:\/\/127\.0\.0\.1:\d+\/reauthorize\/[A-Za-z0-9_.-]+)/.exec(text)?.[1]
    t.ok(url, 'the one-click link')
    t.match(html, `href="${url}"`, 'the HTML part links to it too')
    t.match(html, 'Receive no more of these emails')

    const rows = await outbox(app)
    t.equal(rows.length, 1)
    t.equal(rows[0]!.status, 'sent')
    t.equal(rows[0]!.dedupe_key, linkDedupeKey(rollout.id, ann, 0))
    const link = await app.db
      .selectFrom('reauth_links')
      .selectAll()
      .where('user_id', '=', ann)
      .executeTakeFirstOrThrow()
    t.ok(link.emailed_at, 'the link is marked emailed')

    // The rollout page: the link is "emailed" (never "sent"), the funnel counts one emailed.
    const page = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
    t.match(page.text, /<span class="badge warn">emailed<\/span>/)
    t.notMatch(page.text, />sent</)
    t.match(page.text, /data-step="emailed"><span>emailed<\/span><span class="num">1</)

    // Following the link: "opened" moves.
    const person = new Agent()
    const linkPage = await person.get(url!)
    t.equal(linkPage.status, 200)
    const opened = await app.db
      .selectFrom('reauth_links')
      .select('opened_at')
      .where('id', '=', link.id)
      .executeTakeFirstOrThrow()
    t.ok(opened.opened_at, 'opened is recorded')
    const funnel = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/funnel?step=opened`)
    t.match(funnel.text, 'ann@example.com', 'the opened step lists Ann')

    // A second campaign: Ann was already emailed for this rollout; nothing goes out twice.
    await startCampaign(app, ops, rollout.id)
    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 1, 'the same step never reaches one person twice')

    // RFC 8058 one-click: a POST without cookies, multipart body.
    const form = new FormData()
    form.set('List-Unsubscribe', 'One-Click')
    const oneClick = await fetch(unsubscribe!, { method: 'POST', body: form })
    t.equal(oneClick.status, 200)
    const optOut = await app.db.selectFrom('mail_opt_outs').selectAll().where('user_id', '=', ann).executeTakeFirst()
    t.equal(optOut?.source, 'one-click')
    const { rolloutFunnel } = await import('../../src/mail/funnel.js')
    t.equal(
      (await rolloutFunnel(app.db, rollout.id, clock.now())).opted_out,
      2,
      'the funnel counts both opted-out members',
    )
    // Reminders are due after 3 days, but Ann opted out: none is queued.
    clock.advance(4 * DAY)
    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 1, 'an opted-out person gets no reminder')
  },
)

t.test('a GET of the opt-out URL changes nothing; a forged token is a 404 page', async (t) => {
  const { app, member } = await setup(t)
  const ann = await member('c-ann', 'ann@example.com')
  const { unsubscribeUrl } = await import('../../src/mail/opt-out.js')
  const url = unsubscribeUrl(app.config.publicUrl, app.config.linkSigningSecret, ann)
  const page = await new Agent().get(url)
  t.equal(page.status, 200)
  t.match(page.text, 'Stop these emails')
  t.equal((await app.db.selectFrom('mail_opt_outs').selectAll().execute()).length, 0, 'a GET never opts out')
  const forged = await fetch(`${url.slice(0, -3)}AAA`, {
    method: 'POST',
    body: 'List-Unsubscribe=One-Click',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  })
  t.equal(forged.status, 404)
  t.ok(
    app.logs.some((l) => l.msg === 'unsubscribe link refused'),
    'logged',
  )
  t.equal((await app.db.selectFrom('mail_opt_outs').selectAll().execute()).length, 0, 'nothing written')
})

t.test(
  'transient failures wait and retry with backoff; a 550 at RCPT fails with the reply; the page says so',
  async (t) => {
    const { smtp, app, rollout, member, ops, clock } = await setup(t)
    await member('c-ann', 'ann@example.com')
    await member('c-rej', 'reject@example.com')
    smtp.transientFailure = true
    await startCampaign(app, ops, rollout.id)
    await app.app.jobs.run('mail')
    let rows = await outbox(app)
    t.same(
      rows.map((r) => [r.to_address, r.status, r.attempts]),
      [
        ['ann@example.com', 'queued', 1],
        ['reject@example.com', 'queued', 1],
      ],
      'both wait after a 451',
    )
    t.match(rows[0]!.reason, /451/)
    t.ok(rows[0]!.next_attempt_at > clock.now(), 'retried later, not at once')
    const page = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
    t.match(page.text, 'Email delivery is failing: 2 messages waiting to be retried')

    smtp.transientFailure = false
    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 0, 'nothing is retried before its time')
    clock.advance(60_000)
    await app.app.jobs.run('mail')
    rows = await outbox(app)
    t.same(
      rows.map((r) => [r.to_address, r.status]),
      [
        ['ann@example.com', 'sent'],
        ['reject@example.com', 'failed'],
      ],
    )
    t.match(rows[1]!.reason, /550 5\.1\.1 no such mailbox here/, "the server's reply is kept")
    t.equal(smtp.received.length, 1)
    clock.advance(DAY)
    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 1, 'a permanent failure is never retried')
    const link = await ops.get(`${app.url}/admin/rollouts/${rollout.id}/funnel?step=failed`)
    t.match(link.text, 'reject@example.com')
  },
)

t.test('reminders go to people still lacking and stop once they are covered; pause holds them', async (t) => {
  const { smtp, app, rollout, member, ops, clock } = await setup(t)
  const ann = await member('c-ann', 'ann@example.com')
  await member('c-bob', 'bob@example.com')
  await startCampaign(app, ops, rollout.id, { reminders: 'on', reminder_days: '3, 7' })
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 2)

  clock.advance(2 * DAY)
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 2, 'no reminder before 3 days')

  // Ann comes over; Bob does not.
  await addGrant(app.app.deps, ann, 'production-v2', rollout.scopes, clock.now())
  clock.advance(2 * DAY)
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 3, 'one reminder')
  const reminder = smtp.received[2]!
  t.same(reminder.to, ['bob@example.com'], 'to the person still lacking')
  t.match(header(reminder.raw, 'Subject'), /^Reminder: /)

  // Paused: the second reminder waits until resumed.
  const campaign = await app.db.selectFrom('mail_campaigns').select('id').executeTakeFirstOrThrow()
  const page = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
  const paused = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/mail/${campaign.id}/pause`, {
    _csrf: hiddenField(page.text, '_csrf'),
  })
  t.equal(paused.status, 303)
  clock.advance(4 * DAY)
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 3, 'nothing while paused')
  await ops.post(`${app.url}/admin/rollouts/${rollout.id}/mail/${campaign.id}/resume`, {
    _csrf: hiddenField(page.text, '_csrf'),
  })
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 4, 'the second reminder after resuming')
  t.same(smtp.received[3]!.to, ['bob@example.com'])
  clock.advance(30 * DAY)
  await app.app.jobs.run('mail')
  t.equal(smtp.received.length, 4, 'each reminder once')
})

t.test('ticked people: preview and links for exactly those; an empty selection is a 400 page', async (t) => {
  const { smtp, app, rollout, member, ops } = await setup(t)
  const ann = await member('c-ann', 'ann@example.com')
  await member('c-bob', 'bob@example.com')
  const page = await ops.get(`${app.url}/admin/rollouts/${rollout.id}`)
  t.match(page.text, `name="user_id" value="${ann}" form="ticked"`, 'each row has a checkbox')
  const csrf = hiddenField(page.text, '_csrf')
  const empty = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/mail/preview`, { _csrf: csrf })
  t.equal(empty.status, 400)
  t.match(empty.text, 'Tick at least one person')
  const preview = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/mail/preview`, {
    _csrf: csrf,
    user_id: [String(ann)],
  })
  t.equal(preview.status, 200)
  t.match(preview.text, /id="will-send">1</)
  await ops.post(`${app.url}/admin/rollouts/${rollout.id}/mail`, {
    _csrf: hiddenField(preview.text, '_csrf'),
    selection: 'users',
    user_id: [String(ann)],
  })
  await app.app.jobs.run('mail')
  t.same(
    smtp.received.map((m) => m.to[0]),
    ['ann@example.com'],
    'only the ticked person',
  )
  const links = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/ticked`, {
    _csrf: csrf,
    user_id: [String(ann)],
  })
  t.equal(links.status, 200)
  t.match(links.text, 'open link reused', "Ann's emailed link is handed back, not multiplied")
})

t.test(
  'revoking an open link: it stops working, the notice names the person, and a new one can be issued',
  async (t) => {
    const { app, rollout, member, ops } = await setup(t)
    const ann = await member('c-ann', 'ann@example.com')
    const page = await ops.get(`${app.url}/admin/users/${ann}`)
    t.match(page.text, 'Issue or show link', 'the user page issues links')
    const issued = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links`, {
      _csrf: hiddenField(page.text, '_csrf'),
      user_id: String(ann),
      return_to: 'link',
    })
    const linkPage = await ops.follow(issued)
    t.match(linkPage.text, 'A new link was issued for ann@example.com')
    const url = /id="link-url" type="text" readonly value="([^"]+)"/.exec(linkPage.text)?.[1]
    t.ok(url)
    const linkId = /\/links\/(\d+)\/revoke/.exec(linkPage.text)?.[1]
    t.ok(linkId, 'a revoke button for the open link')
    const revoked = await ops.follow(
      await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/${linkId}/revoke`, {
        _csrf: hiddenField(linkPage.text, '_csrf'),
      }),
    )
    t.match(revoked.text, 'The link of ann@example.com was revoked')
    const followed = await new Agent().get(url!)
    t.equal(followed.status, 410)
    t.match(followed.text, 'This link was withdrawn')
    const again = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/${linkId}/revoke`, {
      _csrf: hiddenField(linkPage.text, '_csrf'),
    })
    t.equal(again.status, 303, 'revoking twice changes nothing')
    const unknown = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/2147483647/revoke`, {
      _csrf: hiddenField(linkPage.text, '_csrf'),
    })
    t.equal(unknown.status, 404)
    const tooBig = await ops.post(`${app.url}/admin/rollouts/${rollout.id}/links/2147483648/revoke`, {
      _csrf: hiddenField(linkPage.text, '_csrf'),
    })
    t.equal(tooBig.status, 404, 'an id past PostgreSQL integer is refused by the schema')
  },
)
