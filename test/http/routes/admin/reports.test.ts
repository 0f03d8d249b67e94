// /admin/reports as an operator sees it: empty state, "Run report now" (CSRF), the SVG trend with
// its table, downloads (stored file or re-rendered), 404s, and a headless-chromium screenshot.
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../../../src/clock.js'
import { manualSlotKey, runReport } from '../../../../src/reports/runs.js'
import { Agent, hiddenField } from '../../../helpers/browser-agent.js'
import { startTestApp } from '../../../helpers/app.js'
import { ALL, insertMember, insertUser, memoryLog, operatorAgent, seedCoverage } from '../../../reports/fixtures.js'

const HOUR = 3_600_000

t.test('reports page: access, empty state, run now, trend, downloads', async (t) => {
  const clock = new ManualClock(Date.UTC(2025, 0, 10, 6, 0))
  const app = await startTestApp(t, { clock, env: { REPORT_TIMEZONE: 'UTC' } })

  const anonymous = await new Agent().get(`${app.url}/admin/reports`)
  t.equal(anonymous.status, 303, 'signed-out visitors are sent to sign in')
  t.match(anonymous.location, '/admin/sign-in')

  const agent = await operatorAgent(app)
  const empty = await agent.get(`${app.url}/admin/reports`)
  t.equal(empty.status, 200)
  t.match(empty.text, 'No report has run yet')
  t.match(empty.text, 'No active rollout')

  const seed = await seedCoverage(app.db, clock.now())
  // A week of daily snapshots with coverage rising as users reconnect.
  const { log } = memoryLog()
  const ctx = { db: app.db, config: app.config, clock, log }
  for (let day = 0; day < 5; day++) {
    const userId = await insertUser(app.db, 100 + day, clock.now())
    await insertMember(app.db, { id: seed.capTable, scopes: ALL }, userId, 'production-v2', ALL, clock.now())
    await runReport(ctx, { slotKey: new Date(clock.now()).toISOString(), trigger: 'schedule' })
    clock.advance(24 * HOUR)
  }

  const noCsrf = await agent.post(`${app.url}/admin/reports/run`, {})
  t.equal(noCsrf.status, 403, 'POST without CSRF token refused')
  const before = await agent.get(`${app.url}/admin/reports`)
  const ran = await agent.post(`${app.url}/admin/reports/run`, { _csrf: hiddenField(before.text, '_csrf') })
  t.equal(ran.status, 303)
  t.match(ran.location, /^\/admin\/reports\?run=6$/)
  const page = await agent.follow(ran)
  t.equal(page.status, 200)
  t.match(page.text, 'Report run 6 finished')
  t.match(page.text, /<svg[^>]*class="trend"/)
  t.equal((page.text.match(/<svg/g) ?? []).length, 2, 'one chart per active rollout')
  t.notMatch(page.text, 'Old campaign', 'archived rollouts have no chart')
  // Coverage of "Cap table" (covered ÷ all members): 5/11 on day 1 … 9/15 on day 5 and again in the manual run.
  t.match(page.text, '<title>Coverage of Cap table over time</title>')
  t.match(page.text, /2025-01-10 06:00: 45\.5% \(5 of 11\)/)
  t.match(page.text, /60\.0% \(9 of 15\)/)
  t.match(
    page.text,
    /<td>2025-01-10 06:00 UTC<\/td><td>5<\/td><td>11<\/td><td>45\.5%<\/td>/,
    'table fallback with the same numbers',
  )
  t.match(page.text, '/admin/reports/runs/6/report.csv')
  const audit = await app.db.selectFrom('audit_events').selectAll().where('type', '=', 'report.run').execute()
  t.equal(audit.length, 1)
  t.match(JSON.parse(audit[0]!.details), { runId: 6, status: 'succeeded' })

  const csv = await agent.get(`${app.url}/admin/reports/runs/6/report.csv`)
  t.equal(csv.status, 200)
  t.match(csv.headers.get('content-type'), 'text/csv')
  t.match(csv.headers.get('content-disposition'), /attachment; filename="coverage-2025-01-15-0600-6\.csv"/)
  t.match(csv.text, /,Cap table,coverage_pct,covered ÷ all members,60\r\n/)
  const html = await agent.get(`${app.url}/admin/reports/runs/6/report.html`)
  t.equal(html.status, 200)
  t.match(html.headers.get('content-security-policy'), "style-src 'unsafe-inline'")
  t.notMatch(html.headers.get('content-security-policy'), 'script-src', 'no script allowed (default-src none)')

  // Gone from disk → rebuilt from the database, same bytes.
  const json = await agent.get(`${app.url}/admin/reports/runs/6/report.json`)
  rmSync(join(app.config.reports.dir, 'coverage-2025-01-15-0600-6.json'))
  const rebuilt = await agent.get(`${app.url}/admin/reports/runs/6/report.json`)
  t.equal(rebuilt.status, 200)
  t.equal(rebuilt.text, json.text, 're-rendered JSON equals the stored file')
  t.ok(app.logs.some((l) => l.msg === 'report file missing; re-rendered from the database'))

  for (const path of [
    '/admin/reports/runs/999/report.json',
    '/admin/reports/runs/6/report.pdf',
    '/admin/reports/runs/abc/report.csv',
    '/admin/reports/runs/6/..%2f..%2fetc%2fpasswd',
  ]) {
    const res = await agent.get(`${app.url}${path}`)
    t.equal(res.status, 404, `${path} → 404`)
    t.match(res.text, /Report not found|Page not found/)
  }

  // A failed run shows in the list with its error, and its downloads are a clear 404.
  const failed = await runReport(
    { ...ctx, config: { ...app.config, reports: { ...app.config.reports, dir: '/proc/version/reports' } } },
    { slotKey: manualSlotKey(), trigger: 'manual' },
  )
  t.equal(failed.status, 'failed')
  const withFailure = await agent.get(`${app.url}/admin/reports`)
  t.match(
    withFailure.text,
    /badge bad">failed<\/span>\s*<div class="muted">Cannot write reports to directory \/proc\/version\/reports/,
  )
  const noFile = await agent.get(`${app.url}/admin/reports/runs/7/report.csv`)
  t.equal(noFile.status, 404)
  t.match(noFile.text, 'Run 7 failed: Cannot write reports')

  // Screenshot in headless chromium for a look at the chart.
  if (!existsSync('/usr/bin/chromium')) return t.comment('no chromium: screenshot skipped')
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } })
  const cookie = agent.cookieValue(app.url, 'sl_session')!
  await context.addCookies([{ name: 'sl_session', value: cookie, url: app.url }])
  const browserPage = await context.newPage()
  const errors: string[] = []
  browserPage.on(
    'console',
    (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text()),
  )
  browserPage.on(
    'response',
    (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && errors.push(`${r.status()} ${r.url()}`),
  )
  await browserPage.goto(`${app.url}/admin/reports`)
  t.equal(await browserPage.locator('svg.trend').count(), 2)
  t.equal(await browserPage.locator('svg.trend circle').count(), 6 + 6, 'one point per snapshot')
  await browserPage.screenshot({ path: '/tmp/scope-ledger-reports.png', fullPage: true })
  t.same(errors, [], 'no CSP or console errors')
})
