// kill -9 during callbacks on PostgreSQL: a real app process completes many connect callbacks at
// once (same Carta users from several browsers, two active rollouts) and is killed with SIGKILL
// mid-way; a new process starts on the same schema. Whatever committed must be whole: every user
// has at most one active grant and it is the one end_users points at, every grant has its scope
// rows, and every rollout's counters equal a recount. The restarted process serves new callbacks.
// Runs only with TEST_DATABASE_URL or TEST_DATABASE_URL_PG.
import { join } from 'node:path'
import t from 'tap'
import { openDatabase } from '../../src/db/index.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { parseScopes } from '../../src/scopes.js'
import { freePort } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { createTestSchema } from '../helpers/database.js'
import { APPS, type Proc, sharedSetup, startProcess } from './cluster.js'

const pgUrl = process.env.TEST_DATABASE_URL?.trim() || process.env.TEST_DATABASE_URL_PG?.trim()
const USERS = ['cu_1001', 'cu_1002', 'cu_1003', 'cu_1004', 'cu_1005', 'cu_1006']

if (!pgUrl) {
  t.test('kill -9 during callbacks on PostgreSQL', { skip: 'set TEST_DATABASE_URL or TEST_DATABASE_URL_PG' }, () => {})
} else {
  t.test('kill -9 during callbacks on PostgreSQL leaves a consistent ledger', async (t) => {
    const [sandboxPort, port] = [await freePort(), await freePort()]
    const SB = `http://127.0.0.1:${sandboxPort}`
    const A = `http://127.0.0.1:${port}`
    const shared = sharedSetup(sandboxPort)
    const { schema, drop } = await createTestSchema(pgUrl)
    const procs: Proc[] = []
    let db: Awaited<ReturnType<typeof openDatabase>> | undefined
    t.teardown(async () => {
      for (const p of procs.reverse()) await p.stop()
      await db?.destroy()
      await drop()
      shared.cleanup()
    })
    procs.push(
      await startProcess(
        'sandbox',
        'src/sandbox/standalone.ts',
        {
          ...shared.env,
          DATA_DIR: join(shared.dir, 'sandbox'),
          SANDBOX_PORT: String(sandboxPort),
          SANDBOX_REDIRECT_URIS: `${A}/carta/callback`,
          SANDBOX_RATE_LIMIT_PER_SECOND: '1000',
          SANDBOX_RATE_LIMIT_PER_MINUTE: '100000',
        },
        /Sandbox Carta is on/,
      ),
    )
    const env = {
      ...shared.env,
      DATABASE_URL: pgUrl,
      DATABASE_SEARCH_PATH: schema,
      DATABASE_POOL_SIZE: '8',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: A,
      DATA_DIR: join(shared.dir, 'a'),
      RATE_LIMIT_OAUTH_PER_MINUTE: '100000',
    }
    const first = await startProcess('A', 'src/server.ts', env, /Scope Ledger is running/)
    procs.push(first)
    db = await openDatabase({ kind: 'postgres', url: pgUrl, searchPath: schema, poolSize: 2 })
    const appIds = Object.fromEntries(
      (await db.selectFrom('oauth_apps').select(['id', 'key']).execute()).map((r) => [r.key, r.id]),
    )
    const rollouts = [
      await createRollout(db, { name: 'Cap', appId: appIds[APPS.v2.key]!, scopes: APPS.v2.scopes }, 'test', Date.now()),
      await createRollout(
        db,
        { name: 'Info', appId: appIds[APPS.v1.key]!, scopes: APPS.v1.scopes },
        'test',
        Date.now(),
      ),
    ]

    /** One browser through A's connect and the sandbox's consent, up to (not into) A's callback. */
    const prepare = async (i: number) => {
      const agent = new Agent()
      const app = i % 2 ? APPS.v2 : APPS.v1
      let res = await agent.get(`${A}/carta/connect?app=${app.key}`)
      const authorize = res.location!
      res = await agent.get(authorize)
      await agent.post(`${SB}/login`, { user_id: USERS[i % USERS.length]!, next: hiddenField(res.text, 'next') })
      res = await agent.get(authorize)
      res = await agent.post(`${SB}/o/authorize/`, {
        request_id: hiddenField(res.text, 'request_id'),
        decision: 'allow',
        scope: i % 5 === 0 ? ['read_user_info'] : app.scopes,
      })
      return { agent, callback: res.location! }
    }
    const flows = []
    for (let i = 0; i < 40; i++) flows.push(await prepare(i))

    // All callbacks at once; SIGKILL while they are in flight.
    const answers = flows.map((f) =>
      f.agent.get(f.callback).then(
        (r) => r.status,
        () => -1,
      ),
    )
    // Mid-way: once some grants committed (the rest are in flight), not before.
    for (let i = 0; i < 500; i++) {
      const row = await db
        .selectFrom('grants')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
      if (Number(row.n) >= 8) break
      await new Promise((r) => setTimeout(r, 10))
    }
    first.child.kill('SIGKILL')
    const statuses = await Promise.all(answers)
    t.ok(
      statuses.every((s) => s === 303 || s === -1),
      `each callback either completed or lost its connection: ${JSON.stringify(statuses)}`,
    )
    t.ok(!first.output().includes('"level":50'), 'no error log line before the kill')

    const second = await startProcess('A2', 'src/server.ts', env, /Scope Ledger is running/)
    procs.push(second)
    // The restarted process serves new callbacks.
    const after = await prepare(1)
    t.equal((await after.agent.get(after.callback)).status, 303, 'the restarted process completes a callback')

    const doubles = await db
      .selectFrom('grants')
      .select(['user_id', (eb) => eb.fn.countAll().as('n')])
      .where('status', '=', 'active')
      .groupBy('user_id')
      .having((eb) => eb.fn.countAll(), '>', 1)
      .execute()
    t.same(doubles, [], 'at most one active grant per user')
    const pointers = await db
      .selectFrom('end_users as u')
      .leftJoin('grants as g', 'g.id', 'u.active_grant_id')
      .select(['u.id', 'g.status', 'g.user_id'])
      .where('u.active_grant_id', 'is not', null)
      .execute()
    t.ok(
      pointers.every((p) => p.status === 'active' && p.user_id === p.id),
      'every user’s active grant is active and theirs',
    )
    const grants = await db.selectFrom('grants').select(['id', 'granted_scopes']).execute()
    const scopeRows = await db.selectFrom('grant_scopes').select(['grant_id', 'scope']).execute()
    for (const g of grants) {
      const rows = scopeRows
        .filter((r) => r.grant_id === g.id)
        .map((r) => r.scope)
        .sort()
      if (rows.join(' ') !== parseScopes(g.granted_scopes).join(' '))
        t.fail(`grant ${g.id}: scope rows ${rows.join(' ')} ≠ ${g.granted_scopes}`)
    }
    t.ok(grants.length >= 9, `${grants.length} grants, each with its scope rows`)
    t.ok(
      statuses.filter((s) => s === -1).length > 0,
      `the kill cut some callbacks short (${statuses.filter((s) => s === 303).length} of ${statuses.length} completed)`,
    )
    for (const id of rollouts) {
      const stored = Object.fromEntries([...(await storedCounts(db, id))].filter(([, n]) => n !== 0))
      const exact = Object.fromEntries([...(await exactCounts(db, id))].filter(([, n]) => n !== 0))
      t.same(stored, exact, `rollout ${id}: counters equal a recount`)
    }
  })
}
