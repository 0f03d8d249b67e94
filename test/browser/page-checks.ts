// Every page in PAGES (test/browser/pages.ts: the list, how to add a page, the seeded app) is
// opened in chromium and, at desktop and phone widths, must
//   - not scroll sideways: document.documentElement.scrollWidth <= window.innerWidth
//     at 1280, 400, 390 and 360 px (wide tables reflow or scroll inside their own box);
//   - pass axe-core with no serious or critical violation (at 1280 and 390 px; the violations
//     are printed when it fails);
//   - offer a skip link to the main content as the first thing a keyboard reaches;
// and is saved as test-output/screenshots/page-<name>-<1280|390>.png for a person to look at.
// The list is checked in SHARDS slices, one test file each (pages-1.test.ts …), so each file stays
// well inside tap's per-file timeout and two run at once. While working on a few pages:
// PAGES_ONLY=home-,admin-audit npx tap test/browser/pages-*.test.ts runs only the entries whose
// name contains one of those words.
import t from 'tap'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { startTestApp } from '../helpers/app.js'
import { BLOCKING_IMPACTS, formatViolations, runAxe } from '../helpers/axe.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'
import { type Actor, PAGES, type Seeded, seedApp } from './pages.js'

const WIDTHS = [1280, 400, 390, 360]
const AXE_WIDTHS = new Set([1280, 390])
const SCREENSHOT_WIDTHS = new Set([1280, 390])

export const SHARDS = 3

/** Checks the `shard`-th of SHARDS contiguous slices of PAGES (0-based) in one seeded app. */
export function checkPages(shard: number): void {
  const missing = chromiumMissing()
  const size = Math.ceil(PAGES.length / SHARDS)
  const slice = PAGES.slice(shard * size, (shard + 1) * size)
  t.test(
    `every page fits a phone and passes axe (part ${shard + 1} of ${SHARDS})`,
    { skip: missing ? `browser test skipped: ${missing}` : false },
    async (t) => {
      t.equal(new Set(PAGES.map((p) => p.name)).size, PAGES.length, 'page names are unique')
      const app = await startTestApp(t)
      const seeded = await seedApp(app)
      const browser = await launchChromium(t)

      const only = process.env.PAGES_ONLY?.split(',').filter(Boolean)
      for (const entry of slice) {
        if (only && !only.some((word) => entry.name.includes(word))) continue
        await t.test(entry.name, async (t) => {
          const context = await contextFor(browser, seeded, entry.as)
          t.teardown(() => context.close())
          const page = await context.newPage()
          await page.setViewportSize({ width: 1280, height: 900 })
          const response = entry.open
            ? await entry.open(page, seeded)
            : await page.goto(absolute(seeded, entry.path!(seeded)))
          if (response) t.equal(response.status(), entry.status ?? 200, 'status')
          // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what a person reads
          const bodyText = await page.locator('body').innerText()
          t.ok(bodyText.includes(entry.text), `the page says "${entry.text}"`, { url: page.url() })

          const skip = await page.evaluate(() => {
            const first = document.querySelector('a[href], button, input, select, textarea, summary')
            const target = document.getElementById('main')
            return { first: first?.getAttribute('href') ?? null, main: target?.tagName ?? null }
          })
          const path = new URL(page.url()).pathname
          // The API reference speaks to the integrator's developers (scope names, tokens, HTTP), as /admin speaks to operators.
          if (!path.startsWith('/admin') && !path.startsWith('/sandbox') && !path.startsWith('/api'))
            t.same(await endUserProblems(page, bodyText), [], 'speaks to an end user')
          if (entry.calm)
            t.same(
              await page.locator('.warn, .bad, .missing').allInnerTexts(),
              [],
              'an ordinary state: nothing styled as a warning',
            )

          // The report file is a standalone document (also opened from disk), not a layout page.
          if (!entry.name.startsWith('admin-report-file'))
            t.same(skip, { first: '#main', main: 'MAIN' }, 'skip link first')

          for (const width of WIDTHS) {
            await page.setViewportSize({ width, height: 900 })
            const { scrollWidth, innerWidth, wide } = await page.evaluate(() => ({
              scrollWidth: document.documentElement.scrollWidth,
              innerWidth: window.innerWidth,
              // What sticks out, to say where to look when it fails.
              wide: [...document.querySelectorAll('body *')]
                .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
                .slice(0, 5)
                .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')}`),
            }))
            t.ok(
              scrollWidth <= innerWidth,
              `no sideways scrolling at ${width} px (page ${scrollWidth} px wide, window ${innerWidth} px)`,
              {
                wide,
              },
            )
            if (AXE_WIDTHS.has(width)) {
              const violations = await runAxe(page)
              const blocking = violations.filter((v) => BLOCKING_IMPACTS.includes(v.impact ?? ''))
              if (violations.length > blocking.length)
                t.comment(
                  `${entry.name} @${width}: tolerated\n${formatViolations(violations.filter((v) => !blocking.includes(v)))}`,
                )
              t.same(blocking, [], `no serious or critical axe violation at ${width} px`, {
                violations: formatViolations(blocking),
              })
            }
            if (SCREENSHOT_WIDTHS.has(width)) await screenshot(page, `page-${entry.name}-${width}`)
          }
        })
      }
    },
  )
}

/**
 * What an end user should not have to read: the API's word "issuers", RFC citations, scope ids
 * in place of plain words (an id may follow its words, smaller), or two states at once.
 */
async function endUserProblems(page: Page, text: string): Promise<string[]> {
  const problems: string[] = []
  if (/\bissuers?\b/i.test(text)) problems.push('says "issuer" (end users read "companies")')
  if (/\bRFC\s*\d/.test(text)) problems.push('cites an RFC')
  if (/Connected to Carta/.test(text) && /has ended|Reconnect/i.test(text))
    problems.push('says "Connected" and that the connection ended')
  const bareIds = await page.evaluate(() =>
    [...document.querySelectorAll('.scope, .scope-id')]
      .filter((el) => {
        // An id is fine after words in the same item, in a smaller type; an unknown scope (no
        // words exist for it) shows its raw name, and the test data uses none.
        const item = el.closest('li, p, td') ?? el.parentElement!
        const words = (item.textContent ?? '').replace(el.textContent ?? '', '').trim()
        const smaller = parseFloat(getComputedStyle(el).fontSize) < parseFloat(getComputedStyle(item).fontSize)
        return !(words.length > 0 && smaller && el.classList.contains('scope-id'))
      })
      .map((el) => el.textContent),
  )
  if (bareIds.length) problems.push(`scope ids without plain words first: ${bareIds.join(', ')}`)
  return problems
}

function absolute(s: Seeded, path: string): string {
  return /^https?:/.test(path) ? path : `${s.app.url}${path}`
}

/** A fresh browser context holding the actor's cookies (their Scope Ledger and sandbox sessions). */
async function contextFor(browser: Browser, s: Seeded, actor: Actor): Promise<BrowserContext> {
  const context = await browser.newContext()
  if (actor !== 'anonymous') {
    const agent = s.agents[actor]
    await context.addCookies(
      agent
        .cookieNames(s.app.url)
        .map((name) => ({ name, value: agent.cookieValue(s.app.url, name)!, url: s.app.url })),
    )
  }
  return context
}
