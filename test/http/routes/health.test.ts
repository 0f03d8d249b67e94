// /healthz, /readyz and /metrics (src/http/routes/health.ts): liveness, readiness failing when
// the database is gone or behind its migrations, and the metrics' names and values after a
// scripted flow (connect, refresh, a Carta 429, a rollout build, a report run, a revocation).
import { sql } from 'kysely'
import t from 'tap'
import { startTestApp, buildRollouts } from '../../helpers/app.js'
import { hiddenField } from '../../helpers/browser-agent.js'
import { connectUser, expireTokens, sandboxControl } from '../../helpers/connect.js'
import { appId, signedInOperator } from '../../helpers/ledger.js'

const TOKEN = 'metrics-token-0123456789abcdef'

t.test('/healthz and /readyz: ready with the database and the jobs; 503 without', async (t) => {
  const ctx = await startTestApp(t, { backgroundJobs: true })
  const live = await fetch(`${ctx.url}/healthz`)
  t.equal(live.status, 200)
  t.equal(live.headers.get('cache-control'), 'no-store')
  const ready = await fetch(`${ctx.url}/readyz`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { ready: true, checks: { database: 'ok', migrations: 'ok', jobs: 'running' } })

  // A migration the database does not hold (as when a new version starts on an old schema).
  await sql`delete from kysely_migration where name = ${'0009_operator_roles'}`.execute(ctx.db)
  const behind = await fetch(`${ctx.url}/readyz`)
  t.equal(behind.status, 503)
  t.match(await behind.json(), {
    ready: false,
    checks: { database: 'ok', migrations: /1 pending \(0009_operator_roles\)/ },
  })

  await ctx.app.jobs.stop()
  const stopped = await (await fetch(`${ctx.url}/readyz`)).json()
  t.equal(stopped.checks.jobs, 'stopped', 'jobs that should run but do not: not ready')

  await ctx.db.destroy()
  const gone = await fetch(`${ctx.url}/readyz`)
  t.equal(gone.status, 503, 'the database is gone: not ready')
  t.match(await gone.json(), { ready: false, checks: { database: /^unreachable/ } })
  t.equal((await fetch(`${ctx.url}/healthz`)).status, 200, 'still alive: a restart would not help')
  t.ok(ctx.logs.some((l) => l.msg === 'not ready' && l.level === 40))
})

t.test('/readyz on an instance built without background jobs', async (t) => {
  const ctx = await startTestApp(t)
  t.same(await (await fetch(`${ctx.url}/readyz`)).json(), {
    ready: true,
    checks: { database: 'ok', migrations: 'ok', jobs: 'off' },
  })
})

t.test('/metrics is 404 without METRICS_TOKEN', async (t) => {
  const ctx = await startTestApp(t)
  const res = await fetch(`${ctx.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(res.status, 404)
})

t.test('/metrics: bearer token only; names and values after a scripted flow', async (t) => {
  const ctx = await startTestApp(t, { env: { METRICS_TOKEN: TOKEN } })
  const scrape = async () => {
    const res = await fetch(`${ctx.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type') ?? '', 'text/plain')
    return res.text()
  }
  const none = await fetch(`${ctx.url}/metrics`)
  t.equal(none.status, 401)
  t.match(none.headers.get('www-authenticate') ?? '', /^Bearer realm="metrics"$/)
  const wrong = await fetch(`${ctx.url}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } })
  t.equal(wrong.status, 401)
  t.match(wrong.headers.get('www-authenticate') ?? '', 'error="invalid_token"')
  t.notOk(JSON.stringify(ctx.logs).includes('not-the-token-at-all'), 'the presented token is not logged')

  // The flow: a connection, a refresh, a 429 from Carta's API, a rollout built, a report run, a revoke.
  const { agent, userId } = await connectUser(ctx)
  expireTokens(ctx)
  t.equal((await agent.get(`${ctx.url}/features/issuers`)).status, 200, 'refreshed, then listed')
  await sandboxControl(ctx, 'fail', { endpoint: 'api', status: 429, times: 1, retryAfterSeconds: 1 })
  await agent.get(`${ctx.url}/features/issuers`)
  const ops = await signedInOperator(ctx.db, ctx.url, ctx.clock.now())
  const dash = await ops.get(`${ctx.url}/admin`)
  const created = await ops.post(`${ctx.url}/admin/rollouts`, {
    _csrf: hiddenField(dash.text, '_csrf'),
    name: 'Metrics',
    app_id: String(await appId(ctx.db, 'production-v2')),
    scopes: ['read_user_info'],
  })
  t.equal(created.status, 303)
  await buildRollouts(ctx.app)
  const rolloutPage = await ops.get(`${ctx.url}${created.location}`)
  t.equal(rolloutPage.status, 200)
  const reports = await ops.get(`${ctx.url}/admin/reports`)
  t.equal((await ops.post(`${ctx.url}/admin/reports/run`, { _csrf: hiddenField(reports.text, '_csrf') })).status, 303)
  await sandboxControl(ctx, 'fail', { endpoint: 'revoke', status: 503, times: 10 })
  const confirm = await ops.get(`${ctx.url}/admin/users/${userId}/revoke`)
  t.equal(
    (await ops.post(`${ctx.url}/admin/users/${userId}/revoke`, { _csrf: hiddenField(confirm.text, '_csrf') })).status,
    200,
  )

  const text = await scrape()
  const value = (pattern: RegExp) => {
    const m = text.match(pattern)
    return m ? Number(m[1]) : null
  }
  const rolloutId = created.location!.split('/').pop()
  t.match(text, /# TYPE scope_ledger_http_request_duration_seconds histogram/)
  t.ok(value(/^process_resident_memory_bytes (\d+)/m), 'the process: resident memory')
  t.match(text, /^nodejs_eventloop_lag_seconds /m, 'and event-loop lag')
  t.ok(
    value(
      /scope_ledger_http_request_duration_seconds_count\{method="GET",route="\/admin\/rollouts\/:id",status_code="200"\} (\d+)/,
    ),
    'HTTP durations by route pattern',
  )
  t.notMatch(text, `route="/admin/rollouts/${rolloutId}"`, 'never the URL')
  t.equal(value(/scope_ledger_token_refreshes_total\{outcome="refreshed"\} (\d+)/), 1, 'one refresh')
  t.ok(value(/scope_ledger_carta_request_duration_seconds_count\{endpoint="oauth:token",status="200"\} (\d+)/))
  t.ok(value(/scope_ledger_carta_request_duration_seconds_count\{endpoint="\/v1alpha1\/user",status="200"\} (\d+)/))
  t.equal(value(/scope_ledger_carta_rate_limited_total\{endpoint="\/v1alpha1\/issuers"\} (\d+)/), 1, 'the 429')
  t.equal(value(/scope_ledger_carta_errors_total\{endpoint="\/v1alpha1\/issuers",status="429"\} (\d+)/), 1)
  t.ok(value(/scope_ledger_carta_errors_total\{endpoint="oauth:revoke",status="503"\} (\d+)/), 'revoke errors')
  t.equal(
    value(/scope_ledger_revocation_failures_total\{app="production-v2"\} (\d+)/),
    2,
    'failed revocation attempts (access and refresh token)',
  )
  t.equal(value(/scope_ledger_revocation_queue\{app="production-v2",status="pending"\} (\d+)/), 2, 'the queue depth')
  t.equal(value(/scope_ledger_mail_outbox\{status="queued"\} (\d+)/), 0, 'the email outbox depth')
  t.equal(value(/scope_ledger_webhook_deliveries\{status="pending"\} (\d+)/), 0, 'the webhook outbox depth')
  t.equal(value(/scope_ledger_webhook_endpoints\{status="active"\} (\d+)/), 0, 'webhook endpoints')
  t.equal(value(/scope_ledger_report_runs\{trigger="manual",status="succeeded"\} (\d+)/), 1, 'the report run')
  t.equal(value(new RegExp(`scope_ledger_rollout_build_users\\{rollout="${rolloutId}",state="done"\\} (\\d+)`)), 1)
  t.equal(value(new RegExp(`scope_ledger_rollout_build_users\\{rollout="${rolloutId}",state="total"\\} (\\d+)`)), 1)
  t.match(text, /# TYPE scope_ledger_grants gauge/)
  t.notMatch(text, /user(_id)?="/, 'no user ids in labels')

  // Grants by app and scope source: the revoked grant is gone, a new connection counts.
  await connectUser(ctx, { cartaUser: 'cu_1002' })
  t.match(await scrape(), /scope_ledger_grants\{app="[a-z0-9-]+",scopes_source="(reported|assumed)"\} 1/)
})
