// The audit trail in a real browser: the operator's own time zone (the browser's, via app.js) is
// used and named, people and apps appear by name, details are sentences, and it fits 1280 px.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'
import { connectUser, signInOperator } from '../helpers/connect.js'

const missing = chromiumMissing()
t.test(
  'audit trail: readable, in the browser time zone, fits 1280 px',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    await connectUser(app, { cartaUser: 'cu_1002', appKey: 'production-v1' })
    const ops = await signInOperator(app)
    const browser = await launchChromium(t)
    const context = await browser.newContext({ timezoneId: 'America/New_York', viewport: { width: 1280, height: 900 } })
    t.teardown(() => context.close())
    await context.addCookies(
      ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
    )
    const page = await context.newPage()
    await page.goto(`${app.url}/admin/audit`)
    // app.js tells the server the browser's zone and reloads once.
    await page.waitForFunction(() => document.getElementById('time-zone')?.dataset.tzSource === 'browser')
    const note = await page.textContent('#time-zone')
    t.match(note, 'America/New_York', 'the zone is named')
    t.match(note, 'your browser')
    const rows = await page.locator('table.audit tbody tr').allTextContents()
    t.ok(
      rows.some((r) => r.includes('Ben Hartley') && r.includes('Connected') && r.includes('through Production v1')),
      'a sentence about Ben by name',
    )
    t.notOk(
      rows.some((r) => r.includes('{') || /\d{13}/.test(r)),
      'no JSON and no epoch numbers',
    )
    t.ok(await page.locator('a', { hasText: 'Ben Hartley' }).first().isVisible(), 'the person is a link')
    t.ok(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      'no sideways scrolling at 1280 px',
    )
    await screenshot(page, 'audit-1280')
    await page.setViewportSize({ width: 390, height: 900 })
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nor at 390 px')
    await screenshot(page, 'audit-390')
  },
)
