// Scope discovery against the sandbox: 200 proves a scope held, 403 INSUFFICIENT_SCOPE not held, a
// scope that needs an issuer id the token cannot list stays unknown; 401 refreshes once then marks
// the grant broken; 429 blocks the client id until Retry-After and the probe is retried; two
// instances share one budget per client id. Rollout counters move with every result.
import t from 'tap'
import { systemClock } from '../../src/clock.js'
import { discoverScopesCommand } from '../../src/cli/discover-scopes.js'
import { openDatabase } from '../../src/db/index.js'
import { createDeps } from '../../src/deps.js'
import { importGrants } from '../../src/imports/import.js'
import { discoveryStatus, runDiscovery, setDiscoveryPaused } from '../../src/imports/discovery.js'
import { silentLogger } from '../../src/log.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { sandboxControl } from '../helpers/connect.js'
import { appId, signedInOperator } from '../helpers/ledger.js'

async function mint(app: TestApp, clientId: string, users: unknown[]): Promise<string> {
  const res = await fetch(`${app.url}/sandbox/_control/mint-grants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId, users }),
  })
  t.equal(res.status, 200)
  return res.text()
}

async function importText(app: TestApp, text: string) {
  return importGrants({ ...app.app.deps, log: silentLogger }, [Buffer.from(text)], {
    format: 'jsonl',
    fileName: 'minted.jsonl',
    actor: 'cli',
  })
}

async function grantOf(app: TestApp, carta: string) {
  return app.db
    .selectFrom('end_users as u')
    .innerJoin('grants as g', 'g.id', 'u.active_grant_id')
    .select(['g.id', 'g.granted_scopes', 'g.scopes_source', 'g.status', 'u.status as user_status'])
    .where('u.carta_user_id', '=', carta)
    .executeTakeFirstOrThrow()
}

const nonZero = (m: Map<string, number>) => Object.fromEntries([...m].filter(([, n]) => n !== 0))

t.test('200, 403, unknown, 401 and 429 paths', async (t) => {
  const app = await startTestApp(t, { clock: systemClock })
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const rollout = await createRollout(
    app.db,
    { name: 'Cap table', appId: await appId(app.db, 'production-v2'), scopes: v2.scopes },
    'operator:test',
    app.clock.now(),
  )
  const text = await mint(app, v2.clientId, [
    { id: 'cu_1001', scopes: ['read_user_info', 'read_issuer_info'] },
    { id: 'cu_1002', scopes: ['read_user_info'] },
  ])
  t.match(await importText(app, text), { created: 2 })
  const deps = { ...app.app.deps, log: silentLogger }
  t.match(await discoveryStatus(deps), { pending: 2, done: 0, paused: false })

  // Carta says 429 once (Retry-After: 1): the client id waits, then the probe is sent again.
  await sandboxControl(app, 'fail', { endpoint: 'api', status: 429, times: 1, retryAfterSeconds: 1 })
  const started = Date.now()
  const run = await runDiscovery(deps)
  t.match(run, { probed: 2, broken: 0, retry: 0 })
  t.ok(Date.now() - started >= 900, 'waited for Retry-After')
  const budget = await app.db
    .selectFrom('carta_budgets')
    .selectAll()
    .where('client_id', '=', v2.clientId)
    .executeTakeFirstOrThrow()
  t.ok(Number(budget.blocked_until) > started, 'the 429 blocked the client id in the shared budget')

  const ann = await grantOf(app, 'cu_1001')
  t.match(ann, { scopes_source: 'probed', granted_scopes: 'read_issuer_info read_user_info' })
  const evidence = await app.db
    .selectFrom('scope_discoveries')
    .select('evidence')
    .where('grant_id', '=', ann.id)
    .executeTakeFirstOrThrow()
  t.match(JSON.parse(evidence.evidence), [
    { scope: 'read_issuer_info', outcome: 'held', status: 200, endpoint: /^GET \/v1alpha1\/issuers/ },
    { scope: 'read_user_info', outcome: 'held', status: 200 },
    { scope: 'read_issuer_capitalizationtablesummary', outcome: 'not_held', status: 403, reason: 'INSUFFICIENT_SCOPE' },
  ])
  const annUser = await app.db.selectFrom('grants').select('user_id').where('id', '=', ann.id).executeTakeFirstOrThrow()
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const userPage = await ops.get(`${app.url}/admin/users/${annUser.user_id}`)
  t.match(userPage.text, 'How its scopes were discovered', 'the user page shows the evidence')
  t.match(userPage.text, /GET \/v1alpha1\/issuers\?pageSize=1<\/span> → 200/)
  t.match(
    userPage.text,
    /not held<\/td><td><span class="mono">GET [^<]+<\/span> → 403 <span class="muted">INSUFFICIENT_SCOPE/,
  )
  const ben = await grantOf(app, 'cu_1002')
  t.match(ben, { scopes_source: 'probed', granted_scopes: 'read_user_info' })
  const benEvidence = JSON.parse(
    (
      await app.db
        .selectFrom('scope_discoveries')
        .select('evidence')
        .where('grant_id', '=', ben.id)
        .executeTakeFirstOrThrow()
    ).evidence,
  )
  t.match(benEvidence, [
    { scope: 'read_issuer_info', outcome: 'not_held', status: 403 },
    { scope: 'read_user_info', outcome: 'held' },
    { scope: 'read_issuer_capitalizationtablesummary', outcome: 'unknown', status: null, reason: 'NEEDS_ISSUER_ID' },
  ])
  const members = await app.db
    .selectFrom('rollout_members')
    .select(['user_id', 'reason', 'missing_scopes'])
    .where('rollout_id', '=', rollout)
    .orderBy('user_id')
    .execute()
  t.match(members, [
    { reason: 'missing_scopes', missing_scopes: 'read_issuer_capitalizationtablesummary' },
    { reason: 'missing_scopes' },
  ])
  t.same(nonZero(await storedCounts(app.db, rollout)), nonZero(await exactCounts(app.db, rollout)), 'counters exact')
  const audit = await app.db
    .selectFrom('audit_events')
    .select('details')
    .where('type', '=', 'grant.scopes_changed')
    .where('grant_id', '=', ann.id)
    .executeTakeFirstOrThrow()
  t.match(JSON.parse(audit.details), {
    via: 'probe',
    previousSource: 'unknown',
    evidence: [{ scope: 'read_issuer_info' }],
  })

  // 401, refresh, 401 again: the grant is broken.
  t.match(await importText(app, await mint(app, v2.clientId, [{ id: 'cu_1003', scopes: ['read_user_info'] }])), {
    created: 1,
  })
  await sandboxControl(app, 'fail', { endpoint: 'api', status: 401, times: 2 })
  t.match(await runDiscovery(deps), { probed: 0, broken: 1 })
  t.match(await grantOf(app, 'cu_1003'), { status: 'broken', user_status: 'needs_reconnect' })
  t.same(nonZero(await storedCounts(app.db, rollout)), nonZero(await exactCounts(app.db, rollout)))

  // 401 once: the refresh fixes it and discovery goes on.
  t.match(await importText(app, await mint(app, v2.clientId, [{ id: 'cu_1004', scopes: ['read_user_info'] }])), {
    created: 1,
  })
  await sandboxControl(app, 'fail', { endpoint: 'api', status: 401, times: 1 })
  t.match(await runDiscovery(deps), { probed: 1, broken: 0 })
  t.match(await grantOf(app, 'cu_1004'), {
    status: 'active',
    scopes_source: 'probed',
    granted_scopes: 'read_user_info',
  })

  // Paused: nothing runs, and the CLI says so.
  t.match(await importText(app, await mint(app, v2.clientId, [{ id: 'cu_1005', scopes: ['read_user_info'] }])), {
    created: 1,
  })
  await setDiscoveryPaused(app.db, true, 'operator:test', app.clock.now())
  t.match(await runDiscovery(deps), { probed: 0, paused: true })
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const io = { stdout: { write: () => true }, stderr: { write: () => true } }
  t.equal(await discoverScopesCommand([], open, io), 1, 'paused: exit 1')
  t.equal(await discoverScopesCommand(['--limit', '0'], open, io), 2, 'bad limit: exit 2')
  await setDiscoveryPaused(app.db, false, 'operator:test', app.clock.now())
  t.equal(await discoverScopesCommand(['--limit', '5'], open, io), 0)
  t.match(await discoveryStatus(deps), { pending: 0, paused: false })
})

t.test('two instances share one budget per client id', async (t) => {
  const app = await startTestApp(t, {
    clock: systemClock,
    env: {
      DISCOVERY_RATE_PER_SECOND: '4',
      DISCOVERY_RATE_PER_MINUTE: '1000',
      SANDBOX_RATE_LIMIT_PER_SECOND: '8',
      SANDBOX_RATE_LIMIT_PER_MINUTE: '1000',
    },
  })
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const ids = ['cu_1001', 'cu_1002', 'cu_1003', 'cu_1004', 'cu_1005', 'cu_1006']
  t.match(await importText(app, await mint(app, v1.clientId, ids)), { created: 6 })
  const second = await openDatabase(
    app.config.database,
    app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
  )
  t.teardown(() => second.destroy())
  const warnings: string[] = []
  const log = { ...silentLogger, warn: (_: object, msg?: string) => void warnings.push(msg ?? '') }
  const one = { ...app.app.deps, log }
  const two = { ...createDeps({ config: app.config, db: second, clock: systemClock }), log }
  const started = Date.now()
  const [a, b] = await Promise.all([runDiscovery(one), runDiscovery(two)])
  const seconds = (Date.now() - started) / 1000
  t.equal(a.probed + b.probed, 6, 'every grant probed once')
  t.ok(a.probed > 0 && b.probed > 0, `both instances worked (${a.probed} + ${b.probed})`)
  // production-v1 has two probe-able scopes: 12 requests at 4/s take at least two seconds.
  t.ok(seconds >= 2, `the shared budget paced them (${seconds.toFixed(1)} s)`)
  t.same(warnings, [], 'never a 429 from the sandbox')
})
