// The /admin/imports upload form in a real browser: the operator picks a file, submits the real
// form (multipart, with its CSRF field) and lands on the run's page with the summary; the rejected
// line is listed and its CSV downloads. Screenshots at 1280 and 390 wide.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { chromiumMissing, launchChromium, screenshot } from '../helpers/browser.js'
import { signInOperator } from '../helpers/connect.js'

const missing = chromiumMissing()

t.test(
  'upload a JSON Lines file through the form',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t)
    const ops = await signInOperator(app)
    const browser = await launchChromium(t)
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
    t.teardown(() => context.close())
    await context.addCookies(
      ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
    )
    const page = await context.newPage()
    await page.goto(`${app.url}/admin/imports`)
    await screenshot(page, 'import-upload-form-1280')
    await page.setViewportSize({ width: 390, height: 900 })
    await screenshot(page, 'import-upload-form-390')
    await page.setViewportSize({ width: 1280, height: 900 })

    const rows = [
      {
        carta_user_id: 'cu_1',
        client_id: 'scope-ledger-production-v1',
        access_token: 'at-1',
        scopes: 'read_user_info',
      },
      { carta_user_id: 'cu_2', client_id: 'scope-ledger-production-v1' },
      { carta_user_id: 'cu_3', client_id: 'scope-ledger-production-v1', granted_at: 'yesterday-ish' },
    ]
    await page.setInputFiles('#import-file', {
      name: 'estate.jsonl',
      mimeType: 'application/x-ndjson',
      buffer: Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n')),
    })
    await Promise.all([page.waitForURL(/\/admin\/imports\/runs\/\d+$/), page.click('button:has-text("Import")')])
    const counts = page.locator('#counts')
    t.equal(await counts.locator('td[data-label="Created"]').textContent(), '2')
    t.equal(await counts.locator('td[data-label="Rejected"]').textContent(), '1')
    t.match(await page.textContent('main'), 'operator:')
    await screenshot(page, 'import-upload-run-1280')
    await page.setViewportSize({ width: 390, height: 900 })
    await screenshot(page, 'import-upload-run-390')

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('a:has-text("Download the rejected lines")'),
    ])
    const path = await download.path()
    const { readFileSync } = await import('node:fs')
    const csv = readFileSync(path, 'utf8')
    t.match(csv, /^line,reason,carta_user_id,client_id\r\n3,/, 'the rejected line, by number')
    t.notMatch(csv, 'at-1')

    // The dry-run box: the same form, nothing written.
    await page.goto(`${app.url}/admin/imports`)
    await page.setInputFiles('#import-file', {
      name: 'more.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('carta_user_id,client_id\nz1,scope-ledger-production-v1\n'),
    })
    await page.check('input[name="dry_run"]')
    await Promise.all([page.waitForURL(/\/admin\/imports\/upload$/), page.click('button:has-text("Import")')])
    t.match(await page.textContent('main'), 'Nothing was written')
    await screenshot(page, 'import-upload-dry-390')
    const users = await app.db
      .selectFrom('end_users')
      .select('carta_user_id')
      .where('carta_user_id', '=', 'z1')
      .execute()
    t.same(users, [], 'the dry run wrote nothing')
  },
)

t.test(
  'a file over the limit: the 413 page in the browser',
  { skip: missing ? `browser test skipped: ${missing}` : false },
  async (t) => {
    const app = await startTestApp(t, { env: { IMPORT_UPLOAD_MAX_BYTES: '100000' } })
    const ops = await signInOperator(app)
    const browser = await launchChromium(t)
    const context = await browser.newContext({ viewport: { width: 390, height: 900 } })
    t.teardown(() => context.close())
    await context.addCookies(
      ops.cookieNames(app.url).map((name) => ({ name, value: ops.cookieValue(app.url, name)!, url: app.url })),
    )
    const page = await context.newPage()
    await page.goto(`${app.url}/admin/imports`)
    await page.setInputFiles('#import-file', {
      name: 'big.jsonl',
      mimeType: 'application/x-ndjson',
      buffer: Buffer.alloc(5_000_000, 'a'),
    })
    const [response] = await Promise.all([page.waitForNavigation(), page.click('button:has-text("Import")')])
    t.equal(response?.status(), 413)
    t.match(await page.textContent('main'), 'Uploads are limited to 98 KB')
    await screenshot(page, 'import-upload-413-390')
    t.equal((await app.db.selectFrom('import_runs').select('id').execute()).length, 0)
  },
)
