// /admin/imports: import runs with their counters and state, discovery's progress and estimate, the
// pause switch (operator, CSRF), and a clear 4xx for a bad switch.
import t from 'tap'
import { importGrants } from '../../../../src/imports/import.js'
import { silentLogger } from '../../../../src/log.js'
import { startTestApp } from '../../../helpers/app.js'
import { hiddenField } from '../../../helpers/browser-agent.js'
import { signedInOperator } from '../../../helpers/ledger.js'

t.test('runs, discovery status and the pause switch', async (t) => {
  const app = await startTestApp(t)
  const rows = [
    { carta_user_id: 'p1', client_id: 'scope-ledger-production-v1', access_token: 'at-1' },
    { carta_user_id: 'p2', client_id: 'scope-ledger-production-v1' },
    { carta_user_id: 'p3', client_id: 'nobody' },
  ]
  await importGrants(
    { ...app.app.deps, log: silentLogger },
    [Buffer.from(`${rows.map((r) => JSON.stringify(r)).join('\n')}\n`)],
    { format: 'jsonl', fileName: 'estate<1>.jsonl', actor: 'cli', rejectsFile: '/tmp/rejects.csv' },
  )
  // A run a killed process left behind.
  await app.db
    .insertInto('import_runs')
    .values({
      actor: 'cli',
      file_name: 'killed.csv',
      format: 'csv',
      status: 'running',
      started_at: app.clock.now() - 3_600_000,
      heartbeat_at: app.clock.now() - 3_600_000,
      finished_at: null,
      rejects_file: null,
      error: null,
    })
    .execute()

  const anonymous = await fetch(`${app.url}/admin/imports`, { redirect: 'manual' })
  t.equal(anonymous.status, 303, 'operators only')

  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const page = await ops.get(`${app.url}/admin/imports`)
  t.equal(page.status, 200)
  t.match(page.text, 'estate&lt;1&gt;.jsonl', 'the file name, escaped')
  t.match(page.text, /<td data-label="Created">2<\/td>/)
  t.match(page.text, /<td data-label="Rejected">1<br>/)
  t.match(page.text, 'interrupted', 'a stale running run reads as interrupted')
  t.match(page.text, /<strong>1<\/strong> grants with <em>unknown<\/em> scopes to probe/)
  t.match(page.text, '1 grants were imported without tokens')
  t.match(page.text, 'Pause discovery')

  const csrf = hiddenField(page.text, '_csrf')
  const bad = await ops.post(`${app.url}/admin/imports/discovery`, { _csrf: csrf, action: 'explode' })
  t.equal(bad.status, 400, 'an unknown action is a 400 page')
  const noCsrf = await ops.post(`${app.url}/admin/imports/discovery`, { action: 'pause' })
  t.equal(noCsrf.status, 403, 'CSRF protected')
  const paused = await ops.post(`${app.url}/admin/imports/discovery`, { _csrf: csrf, action: 'pause' })
  t.equal(paused.status, 303)
  const after = await ops.get(`${app.url}/admin/imports`)
  t.match(after.text, 'Discovery is paused')
  t.match(after.text, 'Resume discovery')
  const audit = await app.db
    .selectFrom('audit_events')
    .select(['type', 'actor'])
    .where('type', '=', 'discovery.paused')
    .execute()
  t.match(audit, [{ actor: 'operator:ops' }])
})
