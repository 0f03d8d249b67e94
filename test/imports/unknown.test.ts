// A grant imported without scopes has scope source `unknown`: it counts as lacking every required
// scope, both when a rollout is built set-based (measureUsers) and when membership moves per user
// (syncUserRollouts), and reads as *unknown*, not as missing, on the rollout and user pages, in the
// links export and in reports.
import t from 'tap'
import { systemClock } from '../../src/clock.js'
import { importGrants } from '../../src/imports/import.js'
import { exportLinksCsv, linkContextFrom } from '../../src/links/links.js'
import { silentLogger } from '../../src/log.js'
import { toCsv } from '../../src/reports/formats.js'
import { computeSnapshot } from '../../src/reports/snapshot.js'
import { lackingFilter } from '../../src/rollouts/lacking.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp } from '../helpers/app.js'
import { appId, signedInOperator } from '../helpers/ledger.js'

const V2 = 'scope-ledger-production-v2'

t.test('unknown scopes: lacking everywhere, shown as unknown', async (t) => {
  const app = await startTestApp(t)
  const deps = { ...app.app.deps, log: silentLogger }
  const rows = [
    { carta_user_id: 'known', client_id: V2, scopes: 'read_user_info', access_token: 'at-k' },
    { carta_user_id: 'mystery', client_id: V2, access_token: 'at-m' },
  ]
  const file = `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`
  const result = await importGrants(deps, [Buffer.from(file)], { format: 'jsonl', fileName: 'f.jsonl', actor: 'cli' })
  t.match(result, { created: 2, rejected: 0 })

  // Built set-based after the import.
  const scopes = ['read_issuer_info', 'read_user_info']
  const built = await createRollout(
    app.db,
    { name: 'Built', appId: await appId(app.db, 'production-v2'), scopes },
    'operator:test',
    app.clock.now(),
  )
  const members = await app.db
    .selectFrom('rollout_members')
    .innerJoin('end_users', 'end_users.id', 'rollout_members.user_id')
    .select(['carta_user_id', 'state', 'reason', 'missing_scopes'])
    .where('rollout_id', '=', built)
    .orderBy('carta_user_id')
    .execute()
  t.same(members, [
    { carta_user_id: 'known', state: 'lacking', reason: 'missing_scopes', missing_scopes: 'read_issuer_info' },
    {
      carta_user_id: 'mystery',
      state: 'lacking',
      reason: 'scopes_unknown',
      missing_scopes: 'read_issuer_info read_user_info',
    },
  ])
  const nonZero = (m: Map<string, number>) => Object.fromEntries([...m].filter(([, n]) => n !== 0))
  t.same(nonZero(await storedCounts(app.db, built)), nonZero(await exactCounts(app.db, built)))

  const mystery = await app.db
    .selectFrom('end_users')
    .select('id')
    .where('carta_user_id', '=', 'mystery')
    .executeTakeFirstOrThrow()
  const agent = await signedInOperator(app.db, app.url, app.clock.now())
  const page = await agent.get(`${app.url}/admin/rollouts/${built}`)
  t.equal(page.status, 200)
  const row = page.text.slice(page.text.indexOf(`id="user-${mystery.id}"`))
  t.match(row.slice(0, row.indexOf('</tr>')), 'scopes <em>unknown</em>', 'the rollout page says unknown')
  t.notMatch(row.slice(0, row.indexOf('</tr>')), 'class="scope missing"', 'not as missing')
  const user = await agent.get(`${app.url}/admin/users/${mystery.id}`)
  t.match(user.text, 'Scopes <em>unknown</em>')
  t.match(user.text, 'imported (run 1)', 'the user page says where the grant came from')

  let csv = ''
  await exportLinksCsv(
    app.db,
    linkContextFrom(app.config, systemClock),
    { rolloutId: built, filter: lackingFilter({}), issuedBy: 'cli' },
    async (chunk) => {
      csv += chunk
    },
  )
  t.match(csv, /,mystery,,unknown,/, 'the export says unknown')
  t.match(csv, /,known,,read_issuer_info,/)

  const snapshot = await computeSnapshot(app.db, app.clock.now())
  const coverage = snapshot.rollouts.find((r) => r.rolloutId === built)!
  t.equal(coverage.scopesUnknown, 1, 'the report counts them apart')
  t.equal(coverage.lacking, 2)
  t.match(toCsv({ ...snapshot, runId: 1, timeZone: 'UTC', trigger: 'manual' } as never), /,Built,scopes_unknown,,1\r\n/)
})
