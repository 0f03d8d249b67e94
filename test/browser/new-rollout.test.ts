// The New-rollout form in a real browser: what the operator sees selected is what is created, the
// scopes follow the chosen app at once with JavaScript, and without JavaScript the same one form
// still creates the chosen app's rollout with the boxes ticked under that app.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'
import { signInOperator } from '../helpers/connect.js'

const missing = chromiumMissing()
const V1 = ['read_issuer_info', 'read_user_info']

for (const javaScriptEnabled of [true, false]) {
  t.test(
    `new rollout for Production v1 with JavaScript ${javaScriptEnabled ? 'on' : 'off'}`,
    { skip: missing ? `browser test skipped: ${missing}` : false },
    async (t) => {
      const app = await startTestApp(t)
      const ops = await signInOperator(app)
      const browser = await launchChromium(t)
      const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1280, height: 900 } })
      t.teardown(() => context.close())
      await context.addCookies(
        ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
      )
      const page = await context.newPage()
      await page.goto(`${app.url}/admin`)
      const v1 = (
        await app.db.selectFrom('oauth_apps').select('id').where('key', '=', 'production-v1').executeTakeFirstOrThrow()
      ).id
      t.equal(
        await page.locator('#app-choice option:checked').textContent(),
        'Production v2 (production)',
        'v2 preselected',
      )

      await page.selectOption('#app-choice', { label: 'Production v1 (production)' })
      const v1Set = page.locator(`fieldset[data-app="${v1}"]`)
      t.ok(await v1Set.isVisible(), "the chosen app's scopes are shown without another submit")
      const visibleSets = await page.locator('fieldset[data-app]:visible').count()
      if (javaScriptEnabled) t.equal(visibleSets, 1, "only the chosen app's scopes with JavaScript")
      else t.ok(visibleSets > 1, "without JavaScript every app's scopes are shown, each naming its app")
      t.match(await v1Set.locator('legend').textContent(), 'Production v1')
      // Untick one of v1's scopes: what is ticked is what is required.
      await v1Set.locator('input[value$=":read_user_info"]').uncheck()
      await page.fill('#name', 'Issuer list')
      await screenshot(page, `new-rollout-js-${javaScriptEnabled ? 'on' : 'off'}-1280`)
      await page.setViewportSize({ width: 390, height: 900 })
      await screenshot(page, `new-rollout-js-${javaScriptEnabled ? 'on' : 'off'}-390`)
      await Promise.all([page.waitForURL(/\/admin\/rollouts\/\d+$/), page.click('button:has-text("Create rollout")')])

      const rollout = await app.db
        .selectFrom('rollouts')
        .innerJoin('oauth_apps', 'oauth_apps.id', 'rollouts.app_id')
        .select(['oauth_apps.key', 'rollouts.required_scopes'])
        .executeTakeFirstOrThrow()
      t.same(rollout, { key: 'production-v1', required_scopes: V1.filter((s) => s !== 'read_user_info').join(' ') })
      t.match(await page.textContent('main'), 'Production v1')
    },
  )
}
