// The funnel moving as people follow their emailed links in chromium: a campaign goes out through
// a real SMTP server, each link is taken from the MIME that arrived, and after every step the
// rollout page's funnel (in the operator's browser) counts it: opened, continued to Carta,
// completed (everything granted), completed but still lacking (a partial grant). Screenshots of
// the funnel at 1280 and 390 wide land in test-output/screenshots/.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { chromiumMissing, launchChromium, screenshot, screenshotDir } from '../helpers/browser.js'
import { OPERATOR_PASSWORD } from '../helpers/ledger.js'
import { part, startSmtp } from '../helpers/smtp.js'
import { createRollout, operatorAgent } from '../links/fixtures.js'

const missing = chromiumMissing()

t.test(
  'the funnel moves as two people follow their emailed links in chromium',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const smtp = await startSmtp(t)
    const app = await startTestApp(t, {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Scope Ledger <ledger@example.com>', MAIL_RATE_PER_SECOND: '0' },
    })
    const rollout = await createRollout(app.db, { name: 'Cap table summary', now: app.clock.now() })

    // Ben and Chen connected earlier through production-v1 (over HTTP): both lack the cap table scope.
    for (const carta of ['cu_1002', 'cu_1003']) {
      const agent = new Agent()
      const start = await agent.get(`${app.url}/carta/connect?app=production-v1`)
      let sandbox = await agent.get(start.location!)
      sandbox = await agent.follow(
        await agent.post(`${app.url}/sandbox/login`, { next: hiddenField(sandbox.text, 'next'), user_id: carta }),
      )
      const scopes = [...sandbox.text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!)
      const decided = await agent.post(`${app.url}/sandbox/o/authorize/`, {
        request_id: hiddenField(sandbox.text, 'request_id'),
        scope: scopes,
        decision: 'allow',
      })
      t.equal((await agent.get(decided.location!)).status, 303, `${carta} connected through production-v1`)
    }

    // The operator emails everyone lacking; the mail job sends it.
    const opsHttp = await operatorAgent(app)
    const preview = await opsHttp.get(`${app.url}/admin/rollouts/${rollout.id}/mail?selection=everyone`)
    t.match(preview.text, /id="will-send">2</, 'two people will be emailed')
    const created = await opsHttp.post(`${app.url}/admin/rollouts/${rollout.id}/mail`, {
      _csrf: hiddenField(preview.text, '_csrf'),
      selection: 'everyone',
    })
    t.equal(created.status, 303)
    await app.app.jobs.run('mail')
    t.equal(smtp.received.length, 2, 'two messages reached the SMTP server')
    const linkFor = (address: string) => {
      const message = smtp.received.find((m) => m.to.includes(address))
      return /(http:\/\/127\.0\.0\.1:\d+\/reauthorize\/[A-Za-z0-9_.-]+)/.exec(
        part(message?.raw ?? '', 'text/plain') ?? '',
      )?.[1]
    }
    const benLink = linkFor('ben.hartley@harbor.example')
    const chenLink = linkFor('chen.wei@quill.example')
    t.ok(benLink && chenLink, 'each message carries its link')

    const browser = await launchChromium(t)
    const opsContext = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const ops = await opsContext.newPage()
    await ops.goto(`${app.url}/admin/sign-in`)
    await ops.fill('#username', 'ops')
    await ops.fill('#password', OPERATOR_PASSWORD)
    await Promise.all([ops.waitForURL(`${app.url}/admin`), ops.click('button[type=submit]:has-text("Sign in")')])
    const rolloutUrl = `${app.url}/admin/rollouts/${rollout.id}`

    const steps = ['issued', 'emailed', 'opened', 'continued', 'completed', 'completed_lacking'] as const
    type Counts = Record<(typeof steps)[number], number>
    const funnel = async (page: Page): Promise<Counts> => {
      await page.goto(rolloutUrl)
      const counts = {} as Counts
      for (const step of steps)
        counts[step] = Number(await page.locator(`#funnel [data-step="${step}"] .num`).textContent())
      return counts
    }
    const expect = (issued: number, opened: number, continued: number, completed: number, lacking: number) => ({
      issued,
      emailed: 2,
      opened,
      continued,
      completed,
      completed_lacking: lacking,
    })
    t.same(await funnel(ops), expect(2, 0, 0, 0, 0), 'emailed: 2, nobody opened yet')

    // Ben: opens the link (JavaScript off, as many mail clients' browsers), continues, grants all.
    const benContext = await browser.newContext({ javaScriptEnabled: false })
    const ben = await benContext.newPage()
    t.equal((await ben.goto(benLink!))?.status(), 200)
    t.same(await funnel(ops), expect(2, 1, 0, 0, 0), 'Ben opened his link')
    await Promise.all([ben.waitForURL(/\/sandbox\//), ben.click('button:has-text("Continue to Carta")')])
    t.same(await funnel(ops), expect(2, 1, 1, 0, 0), 'Ben continued to Carta')
    await Promise.all([ben.waitForURL(/\/sandbox\/o\/authorize/), ben.click('button[name=user_id][value=cu_1002]')])
    await Promise.all([ben.waitForURL(`${app.url}/?reauthorized=1`), ben.click('button[value=allow]')])
    t.same(await funnel(ops), expect(2, 1, 1, 1, 0), 'Ben granted everything: completed')

    // Chen: the same, but unticks the cap table scope at Carta's consent.
    const chenContext = await browser.newContext()
    const chen = await chenContext.newPage()
    t.equal((await chen.goto(chenLink!))?.status(), 200)
    t.same(await funnel(ops), expect(2, 2, 1, 1, 0), 'Chen opened hers')
    await Promise.all([chen.waitForURL(/\/sandbox\//), chen.click('button:has-text("Continue to Carta")')])
    await Promise.all([chen.waitForURL(/\/sandbox\/o\/authorize/), chen.click('button[name=user_id][value=cu_1003]')])
    t.same(await funnel(ops), expect(2, 2, 2, 1, 0), 'Chen continued to Carta')
    await chen.uncheck('input[name=scope][value=read_issuer_capitalizationtablesummary]')
    await Promise.all([chen.waitForURL(new RegExp(`^${app.url}/`)), chen.click('button[value=allow]')])
    t.same(await funnel(ops), expect(2, 2, 2, 1, 1), 'Chen granted part: completed, still lacking')

    // The step lists behind the chart name the right person.
    await ops.click('#funnel [data-step="completed_lacking"]')
    t.ok(await ops.getByText('chen.wei@quill.example').first().isVisible(), 'the still-lacking step lists Chen')
    t.equal(await ops.getByText('ben.hartley@harbor.example').count(), 0, 'and not Ben')

    // The chart at 1280 and 390 wide.
    await ops.goto(rolloutUrl)
    await ops.locator('#funnel').screenshot({ path: screenshotPath('mail-funnel-1280') })
    await screenshot(ops, 'mail-funnel-page-1280')
    const narrow = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage()
    await narrow.goto(`${app.url}/admin/sign-in`)
    await narrow.fill('#username', 'ops')
    await narrow.fill('#password', OPERATOR_PASSWORD)
    await Promise.all([narrow.waitForURL(`${app.url}/admin`), narrow.click('button[type=submit]:has-text("Sign in")')])
    await narrow.goto(rolloutUrl)
    await narrow.locator('#funnel').screenshot({ path: screenshotPath('mail-funnel-390') })
    const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    t.ok(overflow <= 0, `the page does not scroll sideways at 390 wide (${overflow} px)`)
  },
)

/** Where an element's screenshot goes (beside the full-page ones). */
function screenshotPath(name: string): string {
  mkdirSync(screenshotDir, { recursive: true })
  return join(screenshotDir, `${name}.png`)
}
