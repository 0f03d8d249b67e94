// README.md's "A five-minute tour (sandbox)", followed step by step in chromium exactly as it is
// worded: the same pages, buttons and links by their visible names, the same demo users and values.
// Each step asserts its outcome (coverage moves, users leave the list, tokens are refreshed), so a
// README that drifts from the product fails here. Screenshots of every step go to a temp directory
// (printed at the end).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import t from 'tap'
import { importGrantsCommand } from '../../src/cli/import-grants.js'
import { openDatabase } from '../../src/db/index.js'
import { startupTasks } from '../../src/startup.js'
import { buildRollouts, startTestApp, type TestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium } from '../helpers/browser.js'
import { sandboxStats } from '../helpers/connect.js'

const CAP_TABLE = 'read_issuer_capitalizationtablesummary'
const shots = mkdtempSync(join(tmpdir(), 'scope-ledger-tour-'))

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(shots, { recursive: true })
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
}

/** Step 2's connection: the home page's app picker, Connect Carta, a demo user, the consent page. */
async function connect(page: Page, app: TestApp, appName: string, user: string, untick: string[] = []) {
  await page.goto(`${app.url}/`)
  // The picker reads "Production v2 (production, current)": pick by the app's name.
  const picker = page.getByLabel('App to connect with')
  const option = picker.locator('option', { hasText: new RegExp(`^${appName} \\(`) })
  await picker.selectOption((await option.getAttribute('value'))!)
  await Promise.all([page.waitForURL(/\/sandbox\//), page.getByRole('button', { name: 'Connect Carta' }).click()])
  await Promise.all([
    page.waitForURL(/\/sandbox\/o\/authorize/),
    page.getByRole('button', { name: new RegExp(`^${user}\\b`) }).click(),
  ])
  for (const scope of untick) await page.locator(`input[type=checkbox][name=scope][value="${scope}"]`).uncheck()
  await Promise.all([page.waitForURL(`${app.url}/`), page.getByRole('button', { name: 'Allow', exact: true }).click()])
}

const granted = (page: Page) => page.locator('#granted-scopes li').evaluateAll((li) => li.map((l) => l.dataset.scope))

async function newPage(browser: Browser, width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } })
  // A step that cannot be followed fails in seconds, not after the default 30 s.
  context.setDefaultTimeout(8000)
  return context.newPage()
}

const missing = chromiumMissing()
t.test(
  "README's five-minute tour, step by step",
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const started = Date.now()
    const app = await startTestApp(t)

    // 1. `npm start`, then note the operator password printed in the framed block on the console.
    // The test app is already started; the server's own start-up tasks print the block.
    const printed: string[] = []
    const log = console.log
    console.log = (...args: unknown[]) => void printed.push(args.join(' '))
    try {
      await startupTasks({ config: app.config, db: app.db, clock: app.clock, log: app.app.log })
    } finally {
      console.log = log
    }
    const block = printed.join('\n')
    t.match(block, /={72}[\s\S]*username: admin[\s\S]*={72}/, 'the framed block names the admin account')
    const password = /password: (\S+)/.exec(block)?.[1]
    t.ok(password, 'the framed block holds the password')

    const browser = await launchChromium(t)

    // 2. Connect as an end user: Production v1, Ben Hartley, everything allowed.
    const ben = await newPage(browser)
    await ben.goto(`${app.url}/`)
    await shot(ben, '02a-home-app-picker')
    await connect(ben, app, 'Production v1', 'Ben Hartley')
    await shot(ben, '02b-ben-home')
    t.equal(await ben.locator('h1').textContent(), 'Ben Hartley', 'home says who you are')
    t.match(await ben.locator('main').textContent(), 'Connected with Production v1', 'and the app')
    t.same((await granted(ben)).sort(), ['read_issuer_info', 'read_user_info'], 'exactly the permissions granted')
    t.ok(
      await ben.locator('#granted-scopes .permission').first().isVisible(),
      'in plain words, with the scope id beside',
    )
    t.ok(
      ['reported', 'assumed'].includes((await ben.locator('#scopes-source').getAttribute('data-source')) ?? ''),
      'recorded as reported or assumed',
    )
    t.ok((await ben.locator('#issuers li').count()) > 0, 'and your companies')

    // A second demo user in a private window (a fresh context) through Production v2 with a box
    // unticked: the cap-table box, so both users lack the scope the rollout below asks for.
    const dana = await newPage(browser, 390)
    await connect(dana, app, 'Production v2', 'Dana Ruiz', [CAP_TABLE])
    await shot(dana, '02c-dana-home-390')
    t.notOk((await granted(dana)).includes(CAP_TABLE), 'the unticked permission is not granted')
    t.same(
      await dana.locator('#missing-scopes li').evaluateAll((li) => li.map((l) => l.dataset.scope)),
      [CAP_TABLE],
      'and is listed as not allowed',
    )
    const overflow = await dana.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    t.ok(overflow <= 0, `no horizontal scrolling at 390 px (${overflow} px)`)

    // 3. Roll out the new scope: sign in at /admin as admin, a rollout targeting Production v2.
    const ops = await newPage(browser)
    await ops.goto(`${app.url}/admin`)
    t.match(ops.url(), /\/admin\/sign-in/, 'the dashboard asks for sign-in')
    await ops.getByLabel('Username').fill('admin')
    await ops.getByLabel('Password').fill(password!)
    await Promise.all([
      ops.waitForURL(`${app.url}/admin`),
      ops.getByRole('button', { name: 'Sign in' }).first().click(),
    ])
    await ops.getByLabel('Target app').selectOption({ label: 'Production v2 (production)' })
    const v2Boxes = ops.locator('fieldset.scope-choice:visible input[type=checkbox]')
    t.equal(await v2Boxes.count(), 3, "Production v2's scopes are offered")
    t.equal(await ops.locator('fieldset.scope-choice:visible input:checked').count(), 3, 'all of them required')
    await ops.getByLabel('Name').fill('Cap table summary')
    await shot(ops, '03a-new-rollout')
    await Promise.all([
      ops.waitForURL(/\/admin\/rollouts\/\d+$/),
      ops.getByRole('button', { name: 'Create rollout' }).click(),
    ])
    const rolloutUrl = ops.url()
    // The running server measures the users in the background; here one pass of that job.
    await buildRollouts(app.app)
    await ops.reload()
    const stat = (label: string) => ops.locator(`.stat:has(.label:text-is("${label}")) .value`).textContent()
    t.equal(await stat('lack some scope'), '2', 'both users lack a scope')
    t.equal(await stat('hold every required scope'), '0')
    t.match(await ops.locator('.value.coverage').textContent(), /^0/, 'coverage shows 0')
    const lackingCapTable = ops.locator('tr', { has: ops.locator(`.scope:text-is("${CAP_TABLE}")`) })
    t.equal(await lackingCapTable.locator('td.num').textContent(), '2', `2 users lack ${CAP_TABLE}`)
    const benRow = ops.locator('tr', { hasText: 'ben.hartley@' })
    t.equal(await benRow.count(), 1, 'Ben is listed')
    t.equal(await ops.locator('tr', { hasText: 'dana.ruiz@' }).count(), 1, 'Dana is listed')
    await Promise.all([ops.waitForURL(/\?link=\d+/), benRow.getByRole('button', { name: 'Issue link' }).click()])
    t.ok(await benRow.getByRole('button', { name: 'Copy link' }).isVisible(), 'Copy link beside the issued link')
    const link = await benRow.locator('input.copy').inputValue()
    t.match(link, /\/reauthorize\//)
    await shot(ops, '03b-rollout-with-link')

    // 4. Reauthorize: Ben opens the link in another browser.
    const revocationsBefore = (await sandboxStats(app)).revocations
    const other = await newPage(browser)
    await other.goto(link)
    t.ok(await other.getByText(CAP_TABLE).first().isVisible(), 'the link page names the new permission')
    await shot(other, '04a-link-page')
    await Promise.all([
      other.waitForURL(/\/sandbox\//),
      other.getByRole('button', { name: 'Continue to Carta' }).click(),
    ])
    // Another browser is not signed in at the sandbox: it asks which demo user first.
    await Promise.all([
      other.waitForURL(/\/sandbox\/o\/authorize/),
      other.getByRole('button', { name: /^Ben Hartley\b/ }).click(),
    ])
    await shot(other, '04b-sandbox-consent')
    await Promise.all([
      other.waitForURL(`${app.url}/?reauthorized=1`),
      other.getByRole('button', { name: 'Allow', exact: true }).click(),
    ])
    await shot(other, '04c-reauthorized')
    t.ok((await granted(other)).includes(CAP_TABLE), 'the new grant holds the new scope')
    t.match(await other.locator('main').textContent(), 'Connected with Production v2', 'and replaced the old one')
    // The old token's revocation at Carta runs as a background job in the server.
    await app.app.jobs.run('revocations')
    await app.app.jobs.idle()
    t.ok((await sandboxStats(app)).revocations > revocationsBefore, 'the old token is revoked at Carta')
    t.equal((await other.goto(link))?.status(), 410, 'the link is used')
    await ops.goto(rolloutUrl)
    t.equal(await ops.locator('tr', { hasText: 'ben.hartley@' }).count(), 0, 'Ben left the lacking list')
    t.equal(await stat('lack some scope'), '1', 'lacking count moved')
    t.equal(await stat('hold every required scope'), '1', 'covered count moved')
    await shot(ops, '04d-rollout-after')

    // 5. Feature gate: Dana (no cap-table scope) opens a company's cap table from her home page.
    await dana.goto(`${app.url}/`)
    await Promise.all([
      dana.waitForURL(/\/cap-table$/),
      dana
        .getByRole('link', { name: /Cap table summary/ })
        .first()
        .click(),
    ])
    await shot(dana, '05-feature-gate-390')
    t.same(
      await dana.locator('.missing-permissions .scope-id').allTextContents(),
      [CAP_TABLE],
      'the page names the missing permission',
    )
    t.ok(await dana.getByRole('button', { name: 'Reauthorize on Carta' }).isVisible(), 'and offers to reauthorize')

    // 6. Reports: /admin/reports → Run report now.
    await ops.goto(`${app.url}/admin/reports`)
    await Promise.all([
      ops.waitForURL(/\/admin\/reports\?run=\d+/),
      ops.getByRole('button', { name: 'Run report now' }).click(),
    ])
    t.match(await ops.locator('.notice').first().textContent(), /Report run \d+ finished/, 'the report ran')
    await shot(ops, '06-reports')

    // 7. Token refresh: /sandbox/ → Move clock forward 1 hour; the home page keeps working.
    const refreshesBefore = (await sandboxStats(app)).refreshes
    const sandbox = await newPage(browser)
    await sandbox.goto(`${app.url}/sandbox/`)
    await Promise.all([
      sandbox.waitForLoadState(),
      sandbox.getByRole('button', { name: 'Move clock forward 1 hour' }).click(),
    ])
    await shot(sandbox, '07a-sandbox-clock')
    await other.goto(`${app.url}/`)
    await shot(other, '07b-home-after-refresh')
    t.equal(await other.locator('.status').first().textContent(), 'Connected to Carta', 'the home page keeps working')
    t.ok((await other.locator('#issuers li').count()) > 0, 'Carta still answers with the companies')
    t.equal((await sandboxStats(app)).refreshes, refreshesBefore + 1, 'because the token was refreshed, once')

    // 8. Adopt an existing estate: the README's curl (the same POST, from here) and
    // `npm run cli -- import-grants estate.jsonl --rejects rejects.csv`, run in process through the
    // CLI's own command function against the test app's database (spawning tsx costs ~10 s of CPU).
    const minted = await fetch(`${app.url}/sandbox/_control/mint-grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ clientId: 'scope-ledger-production-v2', users: 'all', randomSubset: true }),
    })
    t.equal(minted.status, 200)
    const estate = join(app.dataDir, 'estate.jsonl')
    writeFileSync(estate, await minted.text())
    const err: string[] = []
    const io = { stdout: { write: (_: string) => true }, stderr: { write: (s: string) => err.push(s) } }
    const open = async () => ({
      config: app.config,
      db: await openDatabase(
        app.config.database,
        app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
      ),
    })
    const code = await importGrantsCommand([estate, '--rejects', join(app.dataDir, 'rejects.csv')], open, io)
    t.equal(code, 0, `import-grants succeeds ${err.join('')}`)

    await ops.goto(`${app.url}/admin/imports`)
    await shot(ops, '08a-imports')
    t.match(await ops.locator('main').textContent(), 'estate.jsonl', '/admin/imports shows the run')
    t.match(
      ((await ops.locator('section[aria-labelledby=discovery-heading]').textContent()) ?? '').replace(/\s+/g, ' '),
      /[1-9]\d* grants with unknown scopes to probe; 0 probed so far\. At .* about \d+ \w+ left/,
      'and the grants waiting for discovery with an estimate',
    )
    // A user who had not connected before: the import is their only grant.
    const ada = await app.db
      .selectFrom('end_users')
      .select('id')
      .where('carta_user_id', '=', 'cu_1001')
      .executeTakeFirstOrThrow()
    await ops.goto(`${app.url}/admin/users/${ada.id}`)
    await shot(ops, '08b-user-imported')
    const activeGrant = () => ops.locator('main p', { hasText: 'Production v2' }).first().textContent()
    t.match(await activeGrant(), /scopes unknown · imported \(run \d+\)/, 'the grant shows as imported, unknown')
    await buildRollouts(app.app)
    await ops.goto(rolloutUrl)
    t.match(
      await ops.locator('tr', { hasText: 'ada.okafor@' }).textContent(),
      /scopes unknown/,
      'the rollout lists her as unknown until probed',
    )
    // The running server probes in the background; here one pass of that job.
    await app.app.jobs.run('scope-discovery')
    await app.app.jobs.idle()
    await ops.goto(`${app.url}/admin/users/${ada.id}`)
    await shot(ops, '08c-user-probed')
    t.match(await activeGrant(), /scopes probed/, 'then as probed')
    await buildRollouts(app.app)
    await ops.goto(rolloutUrl)
    await shot(ops, '08d-rollout-after-import')
    const probedGrants = await app.db
      .selectFrom('grants')
      .select(['user_id', 'granted_scopes'])
      .where('status', '=', 'active')
      .where('scopes_source', '=', 'probed')
      .execute()
    t.ok(probedGrants.length > 0, 'discovery probed the imported grants')
    for (const g of probedGrants) {
      const listed = await ops.locator(`tr:has(a[href="/admin/users/${g.user_id}"])`).count()
      // The rollout requires all three of Production v2's scopes (step 3).
      const held = g.granted_scopes.split(' ')
      const lacks = ['read_user_info', 'read_issuer_info', CAP_TABLE].some((scope) => !held.includes(scope))
      t.equal(listed > 0, lacks, `user ${g.user_id} (scopes "${g.granted_scopes}") listed iff lacking`)
    }
    t.equal(await ops.locator('.badge:has-text("scopes unknown")').count(), 0, 'nobody is unknown once probed')

    const seconds = (Date.now() - started) / 1000
    t.comment(`tour took ${seconds.toFixed(1)} s; screenshots in ${shots}`)
  },
)
