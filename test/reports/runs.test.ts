// A report run end to end without HTTP: exact numbers, the three files checked against the
// database, re-rendering from the DB, and a reports directory that cannot be written.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { renderReport } from '../../src/reports/formats.js'
import { findRun, loadReportDocument, manualSlotKey, runReport } from '../../src/reports/runs.js'
import { computeSnapshot } from '../../src/reports/snapshot.js'
import { startTestApp } from '../helpers/app.js'
import { ALL, memoryLog, seedCoverage } from './fixtures.js'

const NOW = Date.UTC(2025, 0, 15, 6, 0, 0)

t.test('snapshot: a rollout still measuring its users is left out until it is built', async (t) => {
  const app = await startTestApp(t, { clock: new ManualClock(NOW) })
  const seed = await seedCoverage(app.db, NOW)
  await app.db.updateTable('rollouts').set({ build_status: 'building' }).where('id', '=', seed.issuer).execute()
  const snap = await computeSnapshot(app.db, NOW)
  t.same(
    snap.rollouts.map((r) => r.rolloutId),
    [seed.capTable],
    'partial figures are not reported',
  )
})

t.test('snapshot: exact counts per rollout, scope, app and links; archived rollouts left out', async (t) => {
  const clock = new ManualClock(NOW)
  const app = await startTestApp(t, { clock })
  const seed = await seedCoverage(app.db, NOW)
  const { lines, log } = memoryLog()
  const snap = await computeSnapshot(app.db, NOW, { log })
  t.same(
    snap.rollouts.map((r) => r.rolloutId),
    [seed.capTable, seed.issuer],
  )
  const cap = snap.rollouts[0]!
  t.match(cap, {
    name: 'Cap table',
    targetApp: 'production-v2',
    members: 10,
    activeUsers: 8,
    covered: 4,
    lacking: 4,
    reconnect: 2,
    coveragePct: 40,
  })
  t.same(cap.requiredScopes, ALL)
  t.same(cap.lackingByScope, { read_issuer_capitalizationtablesummary: 6, read_issuer_info: 3, read_user_info: 2 })
  t.same(
    cap.usersByApp.map((a) => [a.appKey, a.users]),
    [
      ['production-v2', 4],
      ['production-v1', 3],
      ['playground', 1],
    ],
  )
  t.same(cap.links, { issued: 4, used: 2, issued24h: 2, used24h: 1 })
  const issuer = snap.rollouts[1]!
  t.match(issuer, { members: 10, activeUsers: 8, covered: 7, lacking: 1, reconnect: 2, coveragePct: 70 })
  t.same(issuer.lackingByScope, { read_issuer_info: 3 })
  t.equal(lines.length, 0, 'no counters: nothing to cross-check')

  // Counters that disagree with the exact counts are reported as a warning.
  await app.db
    .insertInto('rollout_counts')
    .values([
      { rollout_id: seed.capTable, bucket: 'members', count: 10 },
      { rollout_id: seed.capTable, bucket: 'covered', count: 5 },
    ])
    .execute()
  await computeSnapshot(app.db, NOW, { log })
  const warn = lines.find((l) => l.msg.includes('counters disagree'))
  t.ok(warn, 'disagreement logged')
  t.match(warn?.obj, { rolloutId: seed.capTable })
  t.ok(
    ((warn?.obj.differences ?? []) as Array<{ bucket: string }>).some((d) => d.bucket === 'covered'),
    'names the covered bucket',
  )
})

t.test('a run writes JSON, CSV and HTML that match the database, and stores the snapshot', async (t) => {
  const clock = new ManualClock(NOW)
  const app = await startTestApp(t, { clock })
  await seedCoverage(app.db, NOW)
  const dir = join(app.dataDir, 'out')
  const { log } = memoryLog()
  const config = { ...app.config, reports: { ...app.config.reports, dir, timeZone: 'Europe/Paris' } }
  const outcome = await runReport({ db: app.db, config, clock, log }, { slotKey: manualSlotKey(), trigger: 'manual' })
  if (outcome.status !== 'succeeded') throw new Error(`run ${outcome.status}`)
  const id = outcome.runId
  // 06:00 UTC is 07:00 in Paris in January: names use the report time zone.
  t.same(readdirSync(dir).sort(), [
    `coverage-2025-01-15-0700-${id}.csv`,
    `coverage-2025-01-15-0700-${id}.html`,
    `coverage-2025-01-15-0700-${id}.json`,
  ])

  const run = await findRun(app.db, id)
  t.match(run, { status: 'succeeded', trigger: 'manual', error: null, delivery_status: null })
  t.same(JSON.parse(run!.files), {
    json: `coverage-2025-01-15-0700-${id}.json`,
    csv: `coverage-2025-01-15-0700-${id}.csv`,
    html: `coverage-2025-01-15-0700-${id}.html`,
  })

  // Expected numbers straight from the tables, one query per measure.
  const db = app.db
  const rollouts = await db
    .selectFrom('rollouts')
    .select(['id', 'name', 'required_scopes'])
    .where('status', '=', 'active')
    .orderBy('id')
    .execute()
  const json = JSON.parse(readFileSync(join(dir, `coverage-2025-01-15-0700-${id}.json`), 'utf8'))
  t.equal(json.runId, id)
  t.equal(json.takenAt, new Date(NOW).toISOString())
  const csv = readFileSync(join(dir, `coverage-2025-01-15-0700-${id}.csv`), 'utf8')
    .trim()
    .split('\r\n')
  t.equal(csv[0], 'run_id,taken_at,rollout_id,rollout_name,measure,key,value')
  const csvValue = (rolloutId: number, measure: string, key = '') =>
    csv.map((l) => l.split(',')).find((c) => c[2] === String(rolloutId) && c[4] === measure && c[5] === key)?.[6]
  const html = readFileSync(join(dir, `coverage-2025-01-15-0700-${id}.html`), 'utf8')
  for (const r of rollouts) {
    const count = async (state: 'covered' | 'lacking' | 'reconnect') =>
      Number(
        (
          await db
            .selectFrom('rollout_members')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('rollout_id', '=', r.id)
            .where('state', '=', state)
            .executeTakeFirstOrThrow()
        ).n,
      )
    const covered = await count('covered')
    const lacking = await count('lacking')
    const reconnect = await count('reconnect')
    const inJson = json.rollouts.find((x: { rolloutId: number }) => x.rolloutId === r.id)
    t.match(
      inJson,
      { name: r.name, covered, lacking, reconnect, members: covered + lacking + reconnect },
      `${r.name}: JSON totals`,
    )
    t.equal(csvValue(r.id, 'covered'), String(covered), `${r.name}: CSV covered`)
    t.equal(csvValue(r.id, 'reconnect'), String(reconnect), `${r.name}: CSV reconnect`)
    t.equal(
      csvValue(r.id, 'coverage_pct', 'covered ÷ all members'),
      String(Math.round((covered / (covered + lacking + reconnect)) * 1000) / 10),
      `${r.name}: CSV coverage`,
    )
    for (const scope of r.required_scopes.split(' ')) {
      const n = Number(
        (
          await db
            .selectFrom('rollout_member_missing')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('rollout_id', '=', r.id)
            .where('scope', '=', scope)
            .executeTakeFirstOrThrow()
        ).n,
      )
      t.equal(inJson.lackingByScope[scope], n, `${r.name}: JSON lacking ${scope}`)
      t.equal(csvValue(r.id, 'lacking_scope', scope), String(n), `${r.name}: CSV lacking ${scope}`)
    }
    const links = await db
      .selectFrom('reauth_links')
      .select(['issued_at', 'used_at'])
      .where('rollout_id', '=', r.id)
      .execute()
    t.equal(inJson.links.issued, links.length)
    t.equal(inJson.links.used, links.filter((l) => l.used_at !== null).length)
    t.equal(
      csvValue(r.id, 'links_used_24h'),
      String(links.filter((l) => l.used_at !== null && l.used_at >= NOW - 86_400_000).length),
    )
    t.match(html, r.name)
    const snapshot = await db
      .selectFrom('coverage_snapshots')
      .selectAll()
      .where('run_id', '=', id)
      .where('rollout_id', '=', r.id)
      .executeTakeFirstOrThrow()
    t.match(snapshot, { covered, lacking, reconnect, taken_at: NOW }, `${r.name}: stored snapshot`)
  }
  t.match(html, /Cap table[\s\S]*40\.0%/)
  t.notMatch(html, /Old campaign/, 'archived rollout not reported')

  // A missing file is rebuilt from the database byte for byte.
  const document = await loadReportDocument(db, run!, 'Europe/Paris')
  for (const format of ['json', 'csv', 'html'] as const) {
    t.equal(
      renderReport(document, format),
      readFileSync(join(dir, `coverage-2025-01-15-0700-${id}.${format}`), 'utf8'),
      `${format} re-render matches the file`,
    )
  }
})

t.test(
  'a reports directory that cannot be written: run failed with the directory named, nothing half-written, next run fine',
  async (t) => {
    const clock = new ManualClock(NOW)
    const app = await startTestApp(t, { clock })
    await seedCoverage(app.db, NOW)
    // A path under a regular FILE cannot be created even by root (chmod would not stop root).
    const blocker = join(app.dataDir, 'not-a-dir')
    writeFileSync(blocker, 'x')
    const dir = join(blocker, 'reports')
    const { lines, log } = memoryLog()
    const bad = { ...app.config, reports: { ...app.config.reports, dir } }
    const outcome = await runReport(
      { db: app.db, config: bad, clock, log },
      { slotKey: manualSlotKey(), trigger: 'manual' },
    )
    t.equal(outcome.status, 'failed')
    if (outcome.status !== 'failed') return
    t.match(outcome.error, `Cannot write reports to directory ${dir}`)
    const run = await findRun(app.db, outcome.runId)
    t.match(run, { status: 'failed', error: /Cannot write reports to directory .*not-a-dir\/reports \(ENOTDIR\)/ })
    t.ok(run?.finished_at, 'finished time recorded')
    t.equal(
      (await app.db.selectFrom('coverage_snapshots').selectAll().execute()).length,
      0,
      'no snapshot rows for a failed run',
    )
    t.same(
      readdirSync(app.dataDir).filter((f) => f.startsWith('.coverage') || f.startsWith('coverage')),
      [],
      'no stray files',
    )
    t.ok(
      lines.some((l) => l.level === 'error' && l.msg === 'report run failed' && String(l.obj.error).includes(dir)),
      'logged with the directory',
    )

    // Files are renamed only when every one was written: a clash on the last one leaves nothing.
    const good = join(app.dataDir, 'good')
    const ok = await runReport(
      { db: app.db, config: { ...app.config, reports: { ...app.config.reports, dir: good } }, clock, log },
      { slotKey: manualSlotKey(), trigger: 'manual' },
    )
    t.equal(ok.status, 'succeeded', 'the next run succeeds')
    t.equal(readdirSync(good).length, 3)
    rmSync(good, { recursive: true })
    t.notOk(existsSync(good))
  },
)
