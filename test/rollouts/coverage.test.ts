// One rollout's coverage through every place that shows it — the dashboard, the rollout page, the
// reports page, the report files (HTML, CSV, JSON), the CLI summary and the webhook message — must
// be the same number, computed by the one definition (src/rollouts/coverage.ts): covered ÷ all
// members, users who must reconnect included. The ledger is chosen so that the old "÷ users with an
// active grant" would give another figure (2 of 3 = 66.7% instead of 2 of 4 = 50.0%).
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.js'
import { COVERAGE_FORMULA, coveragePercent } from '../../src/rollouts/coverage.js'
import { buildRollouts, startTestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { addGrant, addUser, appId, breakGrant, signedInOperator } from '../helpers/ledger.js'

const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/cli/main.ts'), ...args], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'test', ...env },
    })
    let stdout = ''
    child.stdout.on('data', (c) => (stdout += c))
    child.stderr.resume()
    child.on('close', (code) => resolve({ code, stdout }))
  })
}

t.test('coverage is one number on every page, file, the CLI and the webhook', async (t) => {
  const received: string[] = []
  const hook = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      received.push(body)
      res.end('ok')
    })
  })
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => hook.close(resolve)))
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`

  const ctx = await startTestApp(t, { env: { REPORT_WEBHOOK_URL: hookUrl, REPORT_TIMEZONE: 'UTC' } })
  const { db, url } = ctx
  const now = ctx.clock.now()
  const deps = ctx.app.deps
  // 2 covered, 1 lacking (v1 has no cap-table scope), 1 who must reconnect.
  for (const n of [1, 2]) await addGrant(deps, await addUser(db, now, { carta: `c-${n}` }), 'production-v2', V2, now)
  await addGrant(deps, await addUser(db, now, { carta: 'c-3' }), 'production-v1', V2.slice(1), now)
  const broken = await addUser(db, now, { carta: 'c-4' })
  await addGrant(deps, broken, 'production-v2', V2, now)
  await breakGrant(deps, broken, now)

  const agent = await signedInOperator(db, url, now)
  const dash = await agent.get(`${url}/admin`)
  const created = await agent.post(`${url}/admin/rollouts`, {
    _csrf: hiddenField(dash.text, '_csrf'),
    name: 'Cap table',
    app_id: String(await appId(db, 'production-v2')),
    scopes: V2,
  })
  t.equal(created.status, 303)
  await buildRollouts(ctx.app)
  const rolloutPath = created.headers.get('location')!

  const expected = coveragePercent(2, 4)
  t.equal(expected, 50, 'the definition: covered ÷ all members')
  const figure = '50.0%'
  const seen: Record<string, string | number | null> = {}

  const dashboard = await agent.get(`${url}/admin`)
  seen.dashboard = /<strong class="coverage">([^<]+)<\/strong>/.exec(dashboard.text)?.[1] ?? null
  t.match(dashboard.text, 'all users in the rollout (users who must reconnect included)', 'dashboard: definition')

  const page = await agent.get(`${url}${rolloutPath}`)
  seen.rolloutPage = /<div class="value coverage">([^<]+)<\/div>/.exec(page.text)?.[1] ?? null
  t.match(page.text, 'coverage: 2 of 4 users')
  t.match(page.text, 'all users in the rollout (users who must reconnect included)', 'rollout page: definition')

  const run = await agent.post(`${url}/admin/reports/run`, { _csrf: hiddenField(page.text, '_csrf') })
  t.equal(run.status, 303)
  const runId = (await db.selectFrom('report_runs').select('id').executeTakeFirstOrThrow()).id

  const html = await agent.get(`${url}/admin/reports/runs/${runId}/report.html`)
  seen.reportHtml = /<td class="n">([0-9.]+%) <small>\(2 of 4\)<\/small><\/td>/.exec(html.text)?.[1] ?? null
  t.match(html.text, 'all users in the rollout (users who must reconnect included)', 'report HTML: definition')

  const csv = await agent.get(`${url}/admin/reports/runs/${runId}/report.csv`)
  const csvRow = csv.text.split('\r\n').find((l) => l.includes(',coverage_pct,'))
  seen.reportCsv = csvRow ? `${Number(csvRow.split(',').at(-1)).toFixed(1)}%` : null
  t.match(csvRow, COVERAGE_FORMULA, 'report CSV: the definition is the key of the coverage row')

  const json = JSON.parse((await agent.get(`${url}/admin/reports/runs/${runId}/report.json`)).text)
  seen.reportJson = `${json.rollouts[0].coveragePct.toFixed(1)}%`
  t.match(json.coverageDefinition, 'all users in the rollout', 'report JSON: definition')

  const reports = await agent.get(`${url}/admin/reports`)
  seen.reportsPage = /<td>2<\/td><td>4<\/td><td>([^<]+)<\/td>/.exec(reports.text)?.[1] ?? null
  t.match(reports.text, 'all users in the rollout (users who must reconnect included)', 'reports page: definition')

  await ctx.app.jobs.idle()
  for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
  const hookBody = JSON.parse(received[0] ?? '{}') as { text?: string }
  seen.webhook = /\*Cap table\*: ([0-9.]+%) covered \(2 of 4 members\)/.exec(hookBody.text ?? '')?.[1] ?? null
  t.match(hookBody.text, COVERAGE_FORMULA, 'webhook: definition')

  const dbEnv: Record<string, string> =
    ctx.config.database.kind === 'sqlite'
      ? { DATABASE_PATH: ctx.config.database.path }
      : {
          DATABASE_URL: ctx.config.database.url,
          ...(ctx.config.database.searchPath ? { DATABASE_SEARCH_PATH: ctx.config.database.searchPath } : {}),
        }
  const printed = await cli(['report', '--quiet'], {
    ...dbEnv,
    DATA_DIR: ctx.dataDir,
    REPORTS_DIR: join(ctx.dataDir, 'cli-reports'),
  })
  t.equal(printed.code, 0)
  seen.cli = /Cap table\s+4\s+2\s+1\s+1\s+([0-9.]+%)/.exec(printed.stdout)?.[1] ?? null
  t.match(printed.stdout, 'all users in the rollout (users who must reconnect included)', 'CLI: definition')

  t.same(
    seen,
    {
      dashboard: figure,
      rolloutPage: figure,
      reportHtml: figure,
      reportCsv: figure,
      reportJson: figure,
      reportsPage: figure,
      webhook: figure,
      cli: figure,
    },
    'the same figure everywhere',
  )
})
