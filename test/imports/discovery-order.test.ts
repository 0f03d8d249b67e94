// Scope discovery's queue order, estimate and pause (src/imports/discovery.ts) against the sandbox:
// members of an active rollout are probed before everyone else even when their grants are newer;
// the dashboard's estimate of the time left matches what a run then takes; pausing stops a run
// after the grant in hand.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { systemClock } from '../../src/clock.js'
import { importGrants } from '../../src/imports/import.js'
import { discoveryStatus, runDiscovery, setDiscoveryPaused } from '../../src/imports/discovery.js'
import { silentLogger } from '../../src/log.js'
import { archiveRollout, createRollout, startRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { appId, signedInOperator } from '../helpers/ledger.js'

async function importMinted(app: TestApp, clientId: string, ids: string[]) {
  const res = await fetch(`${app.url}/sandbox/_control/mint-grants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId, users: ids }),
  })
  t.equal(res.status, 200)
  const result = await importGrants({ ...app.app.deps, log: silentLogger }, [Buffer.from(await res.text())], {
    format: 'jsonl',
    fileName: 'minted.jsonl',
    actor: 'cli',
  })
  t.equal(result.created, ids.length)
}

/** Carta user ids whose grant discovery has finished, in the order they finished. */
async function probedUsers(app: TestApp): Promise<string[]> {
  const rows = await app.db
    .selectFrom('scope_discoveries as d')
    .innerJoin('grants as g', 'g.id', 'd.grant_id')
    .innerJoin('end_users as u', 'u.id', 'g.user_id')
    .select('u.carta_user_id')
    .where('d.status', '=', 'done')
    .orderBy('d.updated_at')
    .orderBy('g.id')
    .execute()
  return rows.map((r) => r.carta_user_id!)
}

t.test('members of an active rollout go first, with a limit', async (t) => {
  const app = await startTestApp(t, { clock: systemClock })
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const deps = { ...app.app.deps, log: silentLogger }
  // Grants imported while no rollout is active: nobody is a member of anything yet.
  await importMinted(app, v1.clientId, ['cu_1001', 'cu_1002', 'cu_1003'])
  // An archived rollout's members have no priority.
  const old = await createRollout(
    app.db,
    { name: 'Old', appId: await appId(app.db, 'production-v1'), scopes: ['read_user_info'] },
    'operator:test',
    app.clock.now(),
  )
  await archiveRollout(app.db, old, 'operator:test', app.clock.now())
  // A new rollout still building: the older users are not measured yet; grants imported now are
  // members at once (their membership is written with the grant).
  await startRollout(
    app.db,
    { name: 'Issuers', appId: await appId(app.db, 'production-v1'), scopes: ['read_issuer_info'] },
    'operator:test',
    app.clock.now(),
  )
  await importMinted(app, v1.clientId, ['cu_1004', 'cu_1005'])
  const members = await app.db
    .selectFrom('rollout_members as m')
    .innerJoin('rollouts as r', 'r.id', 'm.rollout_id')
    .innerJoin('end_users as u', 'u.id', 'm.user_id')
    .select('u.carta_user_id')
    .where('r.status', '=', 'active')
    .orderBy('u.carta_user_id')
    .execute()
  t.same(
    members.map((m) => m.carta_user_id),
    ['cu_1004', 'cu_1005'],
    'only the newer grants are members of the active rollout',
  )

  const first = await runDiscovery(deps, { limit: 2 })
  t.match(first, { probed: 2 })
  t.same(await probedUsers(app), ['cu_1004', 'cu_1005'], 'the members were probed first, though their grants are newer')
  t.match(await discoveryStatus(deps), { pending: 3, done: 2 })

  // Without members waiting: oldest grant first.
  const next = await runDiscovery(deps, { limit: 1 })
  t.match(next, { probed: 1 })
  t.same((await probedUsers(app)).slice(2), ['cu_1001'], 'then the oldest grant')
})

t.test('the estimate is honest and a pause stops the run', async (t) => {
  const app = await startTestApp(t, {
    clock: systemClock,
    env: { DISCOVERY_RATE_PER_SECOND: '4', DISCOVERY_RATE_PER_MINUTE: '1000', SANDBOX_RATE_LIMIT_PER_SECOND: '8' },
  })
  const deps = { ...app.app.deps, log: silentLogger }
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  // production-v1 has two probe-able scopes, production-v2 three.
  await importMinted(app, v1.clientId, ['cu_1001', 'cu_1002', 'cu_1003', 'cu_1004'])
  await importMinted(app, v2.clientId, ['cu_1005'])
  const status = await discoveryStatus(deps)
  t.equal(status.pending, 5)
  // 4 × 2 + 1 × 3 = 11 requests at 4 a second.
  t.equal(status.estimateSeconds, Math.ceil(11 / 4), 'requests per app, at the budget’s rate')
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const page = await ops.get(`${app.url}/admin/imports`)
  t.match(page.text, /about <strong>3 s<\/strong> left/, 'the dashboard shows it')

  // An operator pauses from the dashboard while a run is under way: it stops after the grant in
  // hand, the rest waits.
  const running = runDiscovery(deps)
  for (let i = 0; i < 200 && (await probedUsers(app)).length === 0; i++) await sleep(10)
  const csrf = hiddenField(page.text, '_csrf')
  t.equal((await ops.post(`${app.url}/admin/imports/discovery`, { _csrf: csrf, action: 'pause' })).status, 303)
  const run = await running
  t.ok(run.paused, 'the run saw the pause')
  t.ok(run.probed >= 1 && run.probed < 5, `stopped early (${run.probed} of 5 probed)`)
  t.match(await discoveryStatus(deps), { pending: 5 - run.probed, paused: true })

  // Resumed, the rest takes about what the dashboard said (the first request of a burst is free).
  await setDiscoveryPaused(app.db, false, 'operator:test', app.clock.now())
  const estimate = (await discoveryStatus(deps)).estimateSeconds
  const resumed = Date.now()
  t.match(await runDiscovery(deps), { probed: 5 - run.probed, paused: false })
  const took = (Date.now() - resumed) / 1000
  t.ok(took >= estimate * 0.6 && took <= estimate * 2 + 1, `took ${took.toFixed(1)} s, estimated ${estimate} s`)
})
