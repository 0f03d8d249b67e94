// `tsx src/cli/main.ts report` as a user runs it: exit codes, the summary table, --json, progress
// on stderr, and clear messages for an unwritable directory and a bad configuration.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../../src/config.js'
import { openRuntime } from '../../src/runtime.js'
import { seedCoverage } from '../reports/fixtures.js'

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/cli/main.ts'), ...args], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'test', ...env },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => (stdout += c))
    child.stderr.on('data', (c) => (stderr += c))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('report CLI', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'scope-ledger-cli-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const env = {
    DATA_DIR: dataDir,
    DATABASE_PATH: join(dataDir, 'cli.db'),
    REPORTS_DIR: join(dataDir, 'reports'),
    REPORT_TIMEZONE: 'UTC',
  }
  const { db } = await openRuntime(env)
  await seedCoverage(db, Date.now())
  await db.destroy()

  const ok = await cli(['report'], env)
  t.equal(ok.code, 0, `exit 0 (stderr: ${ok.stderr})`)
  t.match(ok.stdout, /Rollout\s+Members\s+Covered\s+Lacking\s+Reconnect\s+Coverage\s+Lacking per scope/)
  t.match(
    ok.stdout,
    /Cap table\s+10\s+4\s+4\s+2\s+40\.0%\s+read_issuer_capitalizationtablesummary=6 read_issuer_info=3 read_user_info=2/,
  )
  t.match(ok.stdout, /Issuer info\s+10\s+7\s+1\s+2\s+70\.0%\s+read_issuer_info=3/)
  t.match(
    ok.stderr,
    /\[1\/2\] Cap table measured[\s\S]*\[2\/2\] Issuer info measured/,
    'progress per rollout on stderr',
  )
  const files = readdirSync(env.REPORTS_DIR)
  t.equal(files.length, 3)
  t.ok(
    files.every((f) => /^coverage-\d{4}-\d\d-\d\d-\d{4}-1\.(json|csv|html)$/.test(f)),
    'dated names',
  )

  const json = await cli(['report', '--json', '--quiet'], env)
  t.equal(json.code, 0)
  t.equal(json.stderr.replace(/npm warn.*\n/g, ''), '', 'quiet: nothing on stderr')
  const doc = JSON.parse(json.stdout)
  t.equal(doc.runId, 2)
  t.equal(doc.trigger, 'manual')
  t.match(doc.rollouts[0], { name: 'Cap table', covered: 4, coveragePct: 40 })
  t.equal(
    json.stdout,
    // Run 2's file, whatever minute it was written in (the name carries the local time).
    readFileSync(join(env.REPORTS_DIR, readdirSync(env.REPORTS_DIR).find((f) => f.endsWith('-2.json'))!), 'utf8'),
    '--json prints the JSON file',
  )

  // Through npm as the README says (-s: npm's own banner off): stdout is the JSON and nothing else.
  const viaNpm = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn('npm', ['run', '-s', 'cli', '--', 'report', '--json'], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'test', ...env },
    })
    let stdout = ''
    child.stdout.on('data', (c) => (stdout += c))
    child.stderr.resume()
    child.on('close', (code) => resolve({ code, stdout }))
  })
  t.equal(viaNpm.code, 0)
  t.doesNotThrow(() => JSON.parse(viaNpm.stdout), 'npm run -s cli -- report --json: stdout parses as JSON')
  t.equal(JSON.parse(viaNpm.stdout).report, 'scope-ledger-coverage')

  // Unwritable directory: a path under a regular file (fails even for root).
  writeFileSync(join(dataDir, 'file'), '')
  const bad = await cli(['report'], { ...env, REPORTS_DIR: join(dataDir, 'file', 'reports') })
  t.equal(bad.code, 1)
  t.match(bad.stderr, `Report failed: Cannot write reports to directory ${join(dataDir, 'file', 'reports')}`)

  const config = await cli(['report'], { ...env, REPORT_TIMEZONE: 'Mars/Olympus' })
  t.equal(config.code, 1)
  t.match(config.stderr, 'REPORT_TIMEZONE must be an IANA time zone')

  const cron = await cli(['report'], { ...env, REPORT_CRON: 'every day' })
  t.not(cron.code, 0)
  t.match(cron.stderr, 'REPORT_CRON')

  const usage = await cli(['report', '--csv'], env)
  t.equal(usage.code, 2)
  t.match(usage.stderr, 'Unknown option --csv')

  const dbDown = await cli(['report'], { ...env, DATABASE_PATH: join(dataDir, 'file', 'x.db') })
  t.equal(dbDown.code, 1)
  t.match(dbDown.stderr, /Cannot open the sqlite database/)
})
