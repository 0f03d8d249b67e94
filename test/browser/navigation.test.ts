// The operator navigation on a phone, with JavaScript OFF: at 390 px the links are folded into a
// "Menu" (a <details> element) that opens and navigates without any script; at 1280 px they are
// a plain row with no menu button. Copy buttons (they need the script) appear only with it. And
// the skip link: the first Tab stop, visible when focused, and it moves the focus to <main>.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'
import { signInOperator } from '../helpers/connect.js'
import { createMember, createRollout } from '../links/fixtures.js'

const missing = chromiumMissing()
t.test(
  'phone navigation works without JavaScript',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    const ops = await signInOperator(app)
    const browser = await launchChromium(t)
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 800 } })
    t.teardown(() => context.close())
    await context.addCookies(
      ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
    )
    const page = await context.newPage()
    await page.goto(`${app.url}/admin`)

    const apps = page.getByRole('link', { name: 'Apps', exact: true })
    const menu = page.locator('summary', { hasText: 'Menu' })
    t.ok(await menu.isVisible(), 'a Menu button at 390 px')
    t.notOk(await apps.isVisible(), 'the section links are folded away')
    t.notOk(await page.getByRole('button', { name: /Sign out/ }).isVisible(), 'so is sign-out')
    const barHeight = await page.locator('header.topbar').evaluate((el) => el.getBoundingClientRect().height)
    t.ok(barHeight < 70, `the top bar is one row (${barHeight} px)`)
    await screenshot(page, 'nav-phone-closed')

    await menu.click()
    t.ok(await apps.isVisible(), 'the menu opens without JavaScript')
    t.ok(await page.getByRole('button', { name: 'Sign out ops' }).isVisible(), 'sign-out is in the menu')
    t.equal(
      await page.getByRole('link', { name: 'Rollouts', exact: true }).getAttribute('aria-current'),
      'page',
      'the current section is marked',
    )
    t.ok(
      await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      'the open menu does not widen the page',
    )
    await screenshot(page, 'nav-phone-open')
    await Promise.all([page.waitForURL(`${app.url}/admin/apps`), apps.click()])
    t.ok(await page.getByRole('heading', { name: 'Carta apps' }).isVisible(), 'a menu link navigates')
    t.notOk(await apps.isVisible(), 'the next page starts with the menu closed')

    await page.setViewportSize({ width: 1280, height: 800 })
    t.notOk(await menu.isVisible(), 'no Menu button on a wide screen')
    t.ok(await apps.isVisible(), 'the links are a row on a wide screen')
    t.equal(await page.getByRole('navigation').count(), 1, 'one navigation landmark is exposed at a time')
    await page.setViewportSize({ width: 390, height: 800 })
    t.equal(await page.getByRole('navigation').count(), 0, 'on a phone, none until the menu is opened')
    await menu.click()
    t.equal(await page.getByRole('navigation').count(), 1, 'then one')
  },
)

t.test(
  'copy buttons only when the script runs',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    const ops = await signInOperator(app)
    const rollout = await createRollout(app.db, { now: app.clock.now() })
    const userId = await createMember(
      app.app.deps,
      { cartaUserId: 'c-ann', email: 'ann@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
      app.clock.now(),
    )
    const browser = await launchChromium(t)
    for (const javaScriptEnabled of [false, true]) {
      const context = await browser.newContext({ javaScriptEnabled })
      await context.addCookies(
        ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
      )
      const page = await context.newPage()
      await page.goto(`${app.url}/admin/rollouts/${rollout.id}/links/${userId}`)
      await Promise.all([page.waitForURL(/\/links\/\d+\?/), page.click('button:has-text("Issue link")')])
      t.ok(await page.locator('#link-url').isVisible(), `JavaScript ${javaScriptEnabled ? 'on' : 'off'}: the link box`)
      t.equal(
        await page.locator('button[data-copy]').isVisible(),
        javaScriptEnabled,
        `JavaScript ${javaScriptEnabled ? 'on: a Copy button' : 'off: no Copy button that could do nothing'}`,
      )
      await context.close()
    }
  },
)

t.test('skip link to the main content', { skip: missing ? `browser test skipped: ${missing}` : false }, async (t) => {
  const app = await startTestApp(t)
  const browser = await launchChromium(t)
  // (The sign-in page focuses its username field on load, so it is not among these.)
  for (const path of ['/', '/no/such/page', '/sandbox/']) {
    const context = await browser.newContext({ viewport: { width: 390, height: 800 } })
    const page = await context.newPage()
    await page.goto(`${app.url}${path}`)
    const skip = page.getByRole('link', { name: 'Skip to main content' })
    const before = await skip.boundingBox()
    t.ok(before && before.y + before.height <= 0, `${path}: out of sight until focused`)
    await page.keyboard.press('Tab')
    t.equal(
      await page.evaluate(() => document.activeElement?.textContent),
      'Skip to main content',
      `${path}: first Tab`,
    )
    const box = await skip.boundingBox()
    t.ok(box && box.y >= 0 && box.y < 40, `${path}: shown at the top while focused`)
    await page.keyboard.press('Enter')
    t.equal(await page.evaluate(() => document.activeElement?.id), 'main', `${path}: focus moves to <main>`)
    await context.close()
  }
})
