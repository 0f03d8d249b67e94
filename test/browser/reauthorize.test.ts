// Reauthorization in a real browser: the operator signs in, creates a rollout, copies a user's
// reauthorization link; the user, in another browser context with JavaScript OFF, follows it
// through sandbox sign-in and consent; the operator reloads and the user is gone, counts moved.
// Screenshots of every page land in test-output/screenshots/.
import t from 'tap'
import { createOperator } from '../../src/admin/operators.js'
import { buildRollouts, startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'

const missing = chromiumMissing()
t.test(
  'reauthorization link, end to end in chromium',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    const password = 'correct horse battery staple'
    await createOperator(app.db, 'ops', password, app.clock.now())

    // Ben connected earlier through production-v1 (driven over HTTP; the browser part is below).
    const earlier = new Agent()
    const start = await earlier.get(`${app.url}/carta/connect?app=production-v1`)
    let sandbox = await earlier.get(start.location!)
    const signedIn = await earlier.post(`${app.url}/sandbox/login`, {
      next: hiddenField(sandbox.text, 'next'),
      user_id: 'cu_1002',
    })
    sandbox = await earlier.follow(signedIn)
    const scopes = [...sandbox.text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!)
    const decided = await earlier.post(`${app.url}/sandbox/o/authorize/`, {
      request_id: hiddenField(sandbox.text, 'request_id'),
      scope: scopes,
      decision: 'allow',
    })
    t.equal((await earlier.get(decided.location!)).status, 303, 'Ben connected through production-v1')

    const browser = await launchChromium(t)

    // --- operator ---------------------------------------------------------------------------
    const opsContext = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    await opsContext.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url })
    const ops = await opsContext.newPage()
    const scriptErrors: string[] = []
    ops.on('pageerror', (err) => scriptErrors.push(err.message))
    ops.on('console', (msg) => {
      if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) scriptErrors.push(msg.text())
    })
    // Every resource a page asks for exists (the browser's own favicon probe aside).
    ops.on('response', (res) => {
      if (res.status() >= 400 && !res.url().endsWith('/favicon.ico')) scriptErrors.push(`${res.status()} ${res.url()}`)
    })

    await ops.goto(`${app.url}/admin`)
    t.match(ops.url(), /\/admin\/sign-in/, 'sent to sign-in')
    await screenshot(ops, '01-operator-sign-in')
    await ops.fill('#username', 'ops')
    await ops.fill('#password', password)
    await Promise.all([ops.waitForURL(`${app.url}/admin`), ops.click('button[type=submit]:has-text("Sign in")')])

    // Choose production v2 as the target and create the rollout with its scopes.
    await ops.selectOption('#app-choice', { label: 'Production v2 (production)' })
    await ops.fill('#name', 'Cap table summary')
    await screenshot(ops, '02-operator-dashboard')
    await Promise.all([ops.waitForURL(/\/admin\/rollouts\/\d+$/), ops.click('button:has-text("Create rollout")')])
    const rolloutUrl = ops.url()
    // Users are measured in the background; once that is done a reload shows the figures.
    await buildRollouts(app.app)
    await ops.reload()
    const lacking = async () =>
      Number(await ops.locator('.stat:has(.label:text-is("lack some scope")) .value').textContent())
    const covered = async () =>
      Number(await ops.locator('.stat:has(.label:text-is("hold every required scope")) .value').textContent())
    t.equal(await lacking(), 1, 'Ben lacks a scope')
    t.equal(await covered(), 0)
    const benRow = ops.locator('tr', { hasText: 'ben.hartley@harbor.example' })
    t.equal(await benRow.count(), 1, 'Ben is listed')

    await Promise.all([ops.waitForURL(/\?link=\d+/), benRow.locator('button:has-text("Issue link")').click()])
    await screenshot(ops, '03-operator-rollout-with-link')
    const userId = Number(new URL(ops.url()).searchParams.get('link'))
    const copy = benRow.locator('input.copy')
    const link = await copy.inputValue()
    t.match(link, new RegExp(`^${app.url}/reauthorize/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`), 'the copy box holds the link')
    await benRow.locator('button[data-copy]').click()
    await ops.waitForFunction(() => document.querySelector('button[data-copy]')?.textContent === 'Copied')
    t.equal(
      await ops.evaluate(() => navigator.clipboard.readText()),
      link,
      'the copy button put the link on the clipboard',
    )

    // Bulk issue over the (empty) filter: Ben's open link is reused, not multiplied.
    await Promise.all([
      ops.waitForURL(/\/links\/bulk$/),
      ops.click('button:has-text("Issue links for everyone in this filter")'),
    ])
    t.equal(await ops.locator('.stat:has(.label:text-is("new links issued")) .value').textContent(), '0')
    await screenshot(ops, '03b-operator-bulk-result')

    // The operator's own link page for Ben (copy box there too).
    await ops.goto(`${rolloutUrl}/links/${userId}`)
    t.equal(await ops.locator('#link-url').inputValue(), link, 'the link page shows the same link')
    await screenshot(ops, '04-operator-link-page')

    // --- the user, another browser, JavaScript off ------------------------------------------
    const userContext = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 800, height: 900 } })
    const user = await userContext.newPage()
    const linkResponse = await user.goto(link)
    t.equal(linkResponse?.status(), 200)
    t.ok(
      await user.getByText("See a summary of each company's cap table").isVisible(),
      'the new permission in plain words',
    )
    await screenshot(user, '05-user-link-page-no-js')
    await Promise.all([user.waitForURL(/\/sandbox\//), user.click('button:has-text("Continue to Carta")')])
    await screenshot(user, '06-sandbox-sign-in')
    await Promise.all([user.waitForURL(/\/sandbox\/o\/authorize/), user.click('button[name=user_id][value=cu_1002]')])
    await screenshot(user, '07-sandbox-consent')
    await Promise.all([user.waitForURL(`${app.url}/?reauthorized=1`), user.click('button[value=allow]')])
    await screenshot(user, '08-user-home-after-reauthorize')
    t.ok(await user.locator('#reauthorized').isVisible(), 'the user is told the update worked')
    t.ok(await user.getByText('Production v2').first().isVisible(), 'the user is now on production v2')

    // A used link says so.
    const again = await user.goto(link)
    t.equal(again?.status(), 410)
    await screenshot(user, '09-used-link')
    const bad = await user.goto(`${link.slice(0, -3)}AAA`)
    t.equal(bad?.status(), 404)
    await screenshot(user, '10-tampered-link')

    // --- operator reloads ---------------------------------------------------------------------
    await ops.goto(rolloutUrl)
    t.equal(await ops.locator('tr', { hasText: 'ben.hartley@harbor.example' }).count(), 0, 'Ben left the list')
    t.equal(await lacking(), 0, 'lacking count moved')
    t.equal(await covered(), 1, 'covered count moved')
    t.ok(await ops.getByText('Everyone holds the required scopes.').isVisible(), 'the empty state says so')
    await screenshot(ops, '11-operator-rollout-after')
    t.same(scriptErrors, [], 'no script or CSP errors on the operator pages')
  },
)
