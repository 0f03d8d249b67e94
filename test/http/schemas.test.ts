// Input both engines can hold: ids past PostgreSQL's `integer` and text with NUL or other control
// characters are refused at the edge by the routes' schemas, with a 400 page (404 for a path that
// cannot name anything) — never a 500 from the database. Runs on SQLite and, with
// TEST_DATABASE_URL, on PostgreSQL, where each of these was a 500 before the schemas.
import t from 'tap'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { startTestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { addGrant, addUser, appId, signedInOperator } from '../helpers/ledger.js'

const TOO_BIG = '2147483648'
const NUL = '%00'

t.test('ids past the integer range and control characters: 400/404 pages, never 500', async (t) => {
  const ctx = await startTestApp(t)
  const { db, url } = ctx
  const now = ctx.clock.now()
  const user = await addUser(db, now, { carta: 'c-1', email: 'one@example.com' })
  await addGrant(ctx.app.deps, user, 'production-v1', ['read_user_info', 'read_issuer_info'], now)
  const v2 = await appId(db, 'production-v2')
  const rollout = await createRollout(
    db,
    { name: 'Cap table', appId: v2, scopes: ['read_issuer_capitalizationtablesummary'] },
    'operator:test',
    now,
  )
  const agent = await signedInOperator(db, url, now)
  const csrf = hiddenField((await agent.get(`${url}/admin`)).text, '_csrf')

  const gets: Array<[string, number]> = [
    // Paths: nothing can live there.
    [`/admin/rollouts/${TOO_BIG}`, 404],
    [`/admin/users/${TOO_BIG}`, 404],
    [`/admin/users/${TOO_BIG}/revoke`, 404],
    [`/admin/apps/${TOO_BIG}/retire`, 404],
    [`/admin/rollouts/${rollout}/links/${TOO_BIG}`, 404],
    [`/admin/rollouts/${TOO_BIG}/links.csv`, 404],
    [`/admin/reports/runs/${TOO_BIG}/report.json`, 404],
    [`/admin/users/1${NUL}`, 404],
    // Query strings.
    [`/admin?app=${TOO_BIG}`, 400],
    [`/admin/rollouts/${rollout}?app=${TOO_BIG}`, 400],
    [`/admin/rollouts/${rollout}?link=${TOO_BIG}`, 400],
    [`/admin/rollouts/${rollout}?after=${TOO_BIG}`, 400],
    [`/admin/rollouts/${rollout}?sort=newest&after=1.${TOO_BIG}`, 400],
    [`/admin/rollouts/${rollout}?q=a${NUL}`, 400],
    [`/admin/rollouts/${rollout}?q=a%1Fb`, 400],
    [`/admin/rollouts/${rollout}/links.csv?app=${TOO_BIG}`, 400],
    [`/admin/audit?user=${TOO_BIG}`, 400],
    [`/admin/audit?before=1.${TOO_BIG}`, 400],
    [`/admin/audit.csv?user=${TOO_BIG}`, 400],
    [`/admin/reports?run=${TOO_BIG}`, 400],
    [`/carta/connect?app=production-v1${NUL}`, 400],
    [`/carta/callback?state=x${NUL}&code=c`, 400],
  ]
  for (const [path, status] of gets) {
    const res = await agent.get(`${url}${path}`)
    t.equal(res.status, status, `GET ${path}`)
    t.match(res.text, /<html/, 'a page')
  }

  const posts: Array<[string, Record<string, string>, number]> = [
    ['/admin/rollouts', { name: 'Too big', app_id: TOO_BIG, scopes: 'read_user_info' }, 400],
    ['/admin/rollouts', { name: 'Nul\u0000name', app_id: String(v2), scopes: 'read_user_info' }, 400],
    [`/admin/rollouts/${rollout}/links`, { user_id: TOO_BIG }, 400],
    [`/admin/rollouts/${rollout}/links/bulk`, { app: TOO_BIG }, 400],
    [`/admin/rollouts/${rollout}/links/bulk`, { q: 'x\u0000' }, 400],
    [`/admin/apps/${v2}/retire`, { newCurrentAppId: TOO_BIG }, 400],
    [`/admin/rollouts/${TOO_BIG}/archive`, {}, 404],
    [`/admin/users/${TOO_BIG}/revoke`, {}, 404],
  ]
  for (const [path, form, status] of posts) {
    const res = await agent.post(`${url}${path}`, { _csrf: csrf, ...form })
    t.equal(res.status, status, `POST ${path} ${JSON.stringify(form)}`)
  }

  t.notOk(
    ctx.logs.some((l) => l.level === 50),
    'no error log line: every refusal happened before the database',
  )
  t.equal(
    (await db.selectFrom('rollouts').select('id').execute()).length,
    1,
    'no rollout was created from a refused form',
  )
  const archived = await db.selectFrom('rollouts').select('status').executeTakeFirstOrThrow()
  t.equal(archived.status, 'active')
})
