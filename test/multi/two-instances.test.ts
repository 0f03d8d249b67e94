// Two real app processes on one PostgreSQL schema behind one sandbox Carta: a user
// connects on A and reauthorizes through a link on B with the session A gave them; the report
// scheduler on both produces one run per slot; concurrent refreshes on both spend the rotating
// refresh token once. Runs only with TEST_DATABASE_URL or TEST_DATABASE_URL_PG.
import { join } from 'node:path'
import t from 'tap'
import { createApiKey } from '../../src/api/keys.js'
import { systemClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { issueLink } from '../../src/links/links.js'
import { freePort } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { createTestSchema } from '../helpers/database.js'
import { Agent } from '../helpers/browser-agent.js'
import { APPS, type Proc, sharedSetup, startProcess } from './cluster.js'

const pgUrl = process.env.TEST_DATABASE_URL?.trim() || process.env.TEST_DATABASE_URL_PG?.trim()

if (!pgUrl) {
  t.test(
    'two instances on PostgreSQL',
    {
      skip: 'set TEST_DATABASE_URL or TEST_DATABASE_URL_PG (e.g. postgres://postgres@127.0.0.1:5432/test) to run two app processes on PostgreSQL',
    },
    () => {},
  )
} else {
  t.test('two instances on one PostgreSQL database', async (t) => {
    const [sandboxPort, portA, portB] = [await freePort(), await freePort(), await freePort()]
    const SB = `http://127.0.0.1:${sandboxPort}`
    const A = `http://127.0.0.1:${portA}`
    const B = `http://127.0.0.1:${portB}`
    const shared = sharedSetup(sandboxPort)
    const { schema, drop } = await createTestSchema(pgUrl)
    const procs: Proc[] = []
    // Teardowns run first-registered-first: stop processes, then drop the schema and files.
    t.teardown(async () => {
      for (const p of procs.reverse()) await p.stop()
      await db?.destroy()
      await drop()
      shared.cleanup()
    })
    let db: Awaited<ReturnType<typeof openDatabase>> | undefined

    procs.push(
      await startProcess(
        'sandbox',
        'src/sandbox/standalone.ts',
        {
          ...shared.env,
          DATA_DIR: join(shared.dir, 'sandbox'),
          SANDBOX_PORT: String(sandboxPort),
          // Each instance registers its own redirect URI (built from its PUBLIC_URL).
          SANDBOX_REDIRECT_URIS: `${A}/carta/callback,${B}/carta/callback`,
        },
        /Sandbox Carta is on/,
      ),
    )
    const instanceEnv = (name: string, port: number) => ({
      ...shared.env,
      DATABASE_URL: pgUrl,
      DATABASE_SEARCH_PATH: schema,
      DATABASE_POOL_SIZE: '4',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATA_DIR: join(shared.dir, name), // own reports directory: files are re-rendered from the DB
      REPORT_CRON: '* * * * * *', // every second, so slots come fast
      RATE_LIMIT_OAUTH_PER_MINUTE: '10000',
      API_RATE_LIMIT_PER_MINUTE: '25',
    })
    // Started one after the other, as a rolling deploy does (see the report for the concurrent case).
    const a = await startProcess('A', 'src/server.ts', instanceEnv('a', portA), /Scope Ledger is running/)
    procs.push(a)
    const b = await startProcess('B', 'src/server.ts', instanceEnv('b', portB), /Scope Ledger is running/)
    procs.push(b)
    db = await openDatabase({ kind: 'postgres', url: pgUrl, searchPath: schema, poolSize: 2 })
    const stats = async () =>
      (await (await fetch(`${SB}/_control/stats`)).json()) as { refreshes: number; codeExchanges: number }

    const user = new Agent()

    await t.test('a user connects on instance A', async (t) => {
      let res = await user.get(`${A}/carta/connect`)
      t.equal(res.status, 303)
      t.ok(res.location?.startsWith(`${SB}/o/authorize/`), 'A sends the browser to Carta')
      t.equal(new URL(res.location!).searchParams.get('redirect_uri'), `${A}/carta/callback`, "with A's redirect URI")
      res = await user.get(res.location!)
      const next = hiddenField(res.text, 'next')
      res = await user.follow(await user.post(`${SB}/login`, { user_id: 'cu_1002', next }))
      t.equal(res.status, 200, 'consent page')
      res = await user.post(`${SB}/o/authorize/`, {
        request_id: hiddenField(res.text, 'request_id'),
        decision: 'allow',
        scope: APPS.v1.scopes,
      })
      t.ok(res.location?.startsWith(`${A}/carta/callback?`), 'Carta returns to A')
      res = await user.get(res.location!)
      t.equal(res.status, 303, 'A completes the connection')
      const row = await db!
        .selectFrom('end_users as u')
        .innerJoin('grants as g', 'g.id', 'u.active_grant_id')
        .innerJoin('oauth_apps as p', 'p.id', 'g.app_id')
        .select(['u.id', 'g.status', 'p.key', 'g.granted_scopes'])
        .where('u.carta_user_id', '=', 'cu_1002')
        .executeTakeFirstOrThrow()
      t.same({ status: row.status, app: row.key }, { status: 'active', app: APPS.v1.key })
      // The session A created is in the shared store: B knows the user without a new sign-in.
      const onB = await user.get(`${B}/features/issuers`)
      t.equal(onB.status, 200, 'B serves the connected user a Carta-backed page')
    })

    await t.test('the same user reauthorizes through a link on instance B', async (t) => {
      const u = await db!
        .selectFrom('end_users')
        .select(['id', 'active_grant_id'])
        .where('carta_user_id', '=', 'cu_1002')
        .executeTakeFirstOrThrow()
      const v2 = await db!
        .selectFrom('oauth_apps')
        .select('id')
        .where('key', '=', APPS.v2.key)
        .executeTakeFirstOrThrow()
      const rolloutId = await createRollout(
        db!,
        { name: 'Cap tables', appId: v2.id, scopes: APPS.v2.scopes },
        'operator:test',
        Date.now(),
      )
      const member = await db!
        .selectFrom('rollout_members')
        .select('state')
        .where('rollout_id', '=', rolloutId)
        .where('user_id', '=', u.id)
        .executeTakeFirstOrThrow()
      t.equal(member.state, 'lacking', 'the user lacks the cap-table scope')
      const { url, link } = await issueLink(
        db!,
        { publicUrl: B, secret: shared.env.LINK_SIGNING_SECRET!, ttlDays: 14, clock: systemClock },
        { rolloutId, userId: u.id, issuedBy: 'operator:test' },
      )
      t.ok(url.startsWith(`${B}/reauthorize/`), 'a link on B')

      let res = await user.get(url)
      t.equal(res.status, 200)
      res = await user.post(url, { _csrf: hiddenField(res.text, '_csrf') })
      t.equal(res.status, 303, 'B starts the flow (CSRF secret read from the shared session)')
      const authorize = new URL(res.location!)
      t.equal(authorize.searchParams.get('client_id'), APPS.v2.clientId, "with the rollout's app")
      t.equal(authorize.searchParams.get('redirect_uri'), `${B}/carta/callback`, "and B's redirect URI")
      res = await user.get(res.location!)
      t.equal(res.status, 200, 'still signed in at Carta: consent page')
      res = await user.post(`${SB}/o/authorize/`, {
        request_id: hiddenField(res.text, 'request_id'),
        decision: 'allow',
        scope: APPS.v2.scopes,
      })
      t.ok(res.location?.startsWith(`${B}/carta/callback?`), 'Carta returns to B')
      res = await user.get(res.location!)
      t.equal(res.status, 303, 'B completes the reauthorization')

      const after = await db!
        .selectFrom('end_users as u')
        .innerJoin('grants as g', 'g.id', 'u.active_grant_id')
        .innerJoin('oauth_apps as p', 'p.id', 'g.app_id')
        .select(['g.id', 'p.key'])
        .where('u.id', '=', u.id)
        .executeTakeFirstOrThrow()
      t.equal(after.key, APPS.v2.key, 'the active grant is on the new app')
      t.not(after.id, u.active_grant_id, 'a new grant')
      const old = await db!
        .selectFrom('grants')
        .select('status')
        .where('id', '=', u.active_grant_id!)
        .executeTakeFirstOrThrow()
      t.equal(old.status, 'superseded', 'the grant made on A is superseded')
      const used = await db!
        .selectFrom('reauth_links')
        .select(['used_at', 'used_grant_id'])
        .where('id', '=', link.id)
        .executeTakeFirstOrThrow()
      t.equal(used.used_grant_id, after.id, 'the link is spent on the new grant')
      const covered = await db!
        .selectFrom('rollout_members')
        .select('state')
        .where('rollout_id', '=', rolloutId)
        .where('user_id', '=', u.id)
        .executeTakeFirstOrThrow()
      t.equal(covered.state, 'covered')
      const again = await user.get(url)
      t.equal(again.status, 410, 'the link is single-use on every instance (A too)')
      t.equal((await user.get(url.replace(B, A))).status, 410)
    })

    await t.test('concurrent refreshes on both instances refresh once', async (t) => {
      const u = await db!
        .selectFrom('end_users')
        .select('active_grant_id')
        .where('carta_user_id', '=', 'cu_1002')
        .executeTakeFirstOrThrow()
      const grantId = u.active_grant_id!
      const before = await stats()
      const tokensBefore = await db!
        .selectFrom('grant_tokens')
        .select('version')
        .where('grant_id', '=', grantId)
        .executeTakeFirstOrThrow()
      // The access token "expires": every request on both instances now wants a refresh.
      await db!
        .updateTable('grant_tokens')
        .set({ access_expires_at: Date.now() - 1_000 })
        .where('grant_id', '=', grantId)
        .execute()
      const responses = await Promise.all(
        Array.from({ length: 8 }, (_, i) => user.get(`${i % 2 ? B : A}/features/issuers`)),
      )
      t.same(
        responses.map((r) => r.status),
        Array(8).fill(200),
        'every request on both instances is served',
      )
      const after = await stats()
      t.equal(after.refreshes - before.refreshes, 1, 'Carta saw exactly one refresh')
      const tokensAfter = await db!
        .selectFrom('grant_tokens')
        .select(['version', 'refresh_lock_owner'])
        .where('grant_id', '=', grantId)
        .executeTakeFirstOrThrow()
      t.equal(tokensAfter.version, tokensBefore.version + 1, 'tokens replaced once')
      t.equal(tokensAfter.refresh_lock_owner, null, 'lease released')
    })

    await t.test("one API key's rate limit holds across both processes", async (t) => {
      const { key } = await createApiKey(db!, { name: 'both', permissions: ['read'], actor: 'test' }, Date.now())
      // 60 requests at once, half to each process: 25 in all get through, not 25 each.
      const answers = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          fetch(`${i % 2 ? B : A}/api/v1/users/cu_1002`, { headers: { authorization: `Bearer ${key}` } }),
        ),
      )
      const statuses = answers.map((r) => r.status)
      t.equal(statuses.filter((s) => s === 200).length, 25, 'the limit in total')
      t.equal(statuses.filter((s) => s === 429).length, 35, 'then 429')
      t.ok(
        answers.filter((r) => r.status === 429).every((r) => Number(r.headers.get('retry-after')) > 0),
        'with Retry-After',
      )
      t.ok(
        [0, 1].every((side) => statuses.some((s, j) => j % 2 === side && s === 200)),
        'both processes answered some',
      )
    })

    await t.test('the report scheduler on both instances runs each slot once', async (t) => {
      const deadline = Date.now() + 20_000
      const rolloutRows = await db!.selectFrom('rollouts').select(['id', 'created_at']).execute()
      const since = Math.max(...rolloutRows.map((r) => r.created_at))
      let runs: Array<{ slot_key: string; status: string; id: number; started_at: number }> = []
      while (Date.now() < deadline) {
        runs = await db!
          .selectFrom('report_runs')
          .select(['id', 'slot_key', 'status', 'started_at'])
          .where('trigger', '=', 'schedule')
          .where('status', '!=', 'running')
          .orderBy('id')
          .execute()
        if (runs.filter((r) => r.started_at > since + 1_000).length >= 3) break
        await new Promise((r) => setTimeout(r, 250))
      }
      t.ok(runs.length >= 4, `several slots ran (${runs.length})`)
      t.equal(new Set(runs.map((r) => r.slot_key)).size, runs.length, 'one run per slot')
      t.same(
        runs.filter((r) => r.status !== 'succeeded'),
        [],
        'every run succeeded',
      )
      // Both instances competed: for some slots A ran and B found it taken, or the other way.
      const started = (p: Proc) =>
        new Set(
          p
            .logs()
            .filter((l) => l.msg === 'report run started')
            .map((l) => String(l.slotKey)),
        )
      const skipped = (p: Proc) =>
        new Set(
          p
            .logs()
            .filter((l) => /already taken/.test(String(l.msg)))
            .map((l) => String(l.slotKey)),
        )
      const [startedA, startedB, skippedA, skippedB] = [started(a), started(b), skipped(a), skipped(b)]
      t.same(
        [...startedA].filter((s) => startedB.has(s)),
        [],
        'no slot started on both instances',
      )
      t.ok(skippedA.size + skippedB.size > 0, 'the losing instance skipped slots the other ran')
      // Runs that started after the rollout existed snapshot it (earlier ones had none to take).
      for (const run of runs.filter((r) => r.started_at > since + 1_000)) {
        const snaps = await db!
          .selectFrom('coverage_snapshots')
          .select('rollout_id')
          .where('run_id', '=', run.id)
          .execute()
        t.equal(snaps.length, rolloutRows.length, `run ${run.id}: one snapshot per rollout`)
      }
    })

    t.notMatch(
      a.output() + b.output(),
      new RegExp(shared.env.TOKEN_ENCRYPTION_KEYS!.split(':')[1]!.slice(0, 20).replace(/[+/]/g, '.')),
      'no key in logs',
    )
  })
}
