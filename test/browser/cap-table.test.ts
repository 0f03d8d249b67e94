// The cap-table page in chromium, desktop (1280 px) and phone (390 px): an end user connects
// through the sandbox with JavaScript off and opens a company's cap table, which the sandbox
// serves in Carta's documented shape. Screenshots land in test-output/screenshots/.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'

const missing = chromiumMissing()
t.test(
  'cap table summary page, desktop and phone',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    const browser = await launchChromium(t)
    for (const [label, width] of [
      ['desktop', 1280],
      ['phone', 390],
    ] as const) {
      const context = await browser.newContext({ viewport: { width, height: 900 }, javaScriptEnabled: false })
      const page = await context.newPage()
      await page.goto(`${app.url}/carta/connect?app=production-v2`)
      await Promise.all([page.waitForLoadState(), page.click('button[name=user_id][value=cu_1004]')])
      await Promise.all([page.waitForURL(`${app.url}/`), page.click('button[name=decision][value=allow]')])
      await page.goto(`${app.url}/features/issuers/iss_tidepool/cap-table`)
      t.equal(await page.locator('h1').textContent(), 'Cap table summary', label)
      t.equal(await page.locator('table.cap-table tbody tr').count(), 2, `${label}: a share class and a pool`)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      t.ok(overflow <= 0, `${label}: no horizontal scrolling (${overflow} px)`)
      await screenshot(page, `cap-table-${label}`)
      await page.goto(`${app.url}/features/issuers/iss_quill/cap-table`)
      t.match(await page.locator('main').textContent(), /did not give this integration access/)
      await screenshot(page, `cap-table-restricted-${label}`)
      await page.goto(`${app.url}/features/issuers/iss_nope/cap-table`)
      t.match(await page.locator('main').textContent(), /found no company cap table/)
      await screenshot(page, `cap-table-not-found-${label}`)
      await context.close()
    }
  },
)
