// Role enforcement for EVERY /admin route, table-driven from the app's own route list: a route
// without an explicit `config.access` fails here, and each declared rule is checked by requesting
// the route as nobody, a viewer, an operator and an admin (src/http/routes/admin/access.ts).
import type { RouteOptions } from 'fastify'
import t from 'tap'
import { createOperator } from '../../../../src/admin/operators.js'
import type { OperatorRole } from '../../../../src/admin/tables.js'
import { Agent, hiddenField } from '../../../helpers/browser-agent.js'
import { startTestApp, type TestApp } from '../../../helpers/app.js'
import { OPERATOR_PASSWORD } from '../../../helpers/ledger.js'

const ACCESS = ['public', 'viewer', 'operator', 'admin'] as const
const RANK: Record<OperatorRole, number> = { viewer: 0, operator: 1, admin: 2 }

async function signedIn(ctx: TestApp, role: OperatorRole): Promise<Agent> {
  await createOperator(ctx.db, `${role}-1`, OPERATOR_PASSWORD, ctx.clock.now(), role)
  const agent = new Agent()
  const page = await agent.get(`${ctx.url}/admin/sign-in`)
  const res = await agent.post(`${ctx.url}/admin/sign-in`, {
    _csrf: hiddenField(page.text, '_csrf'),
    username: `${role}-1`,
    password: OPERATOR_PASSWORD,
  })
  if (res.status !== 303) throw new Error(`sign-in as ${role} failed: ${res.status}`)
  return agent
}

/** The route's path with every parameter filled in (ids are 1; other segments a plain word). */
function concrete(url: string): string {
  return url.replace(/:[A-Za-z]+(\([^)]*\))?/g, '1').replace(/\*$/, 'x')
}

t.test('every /admin route declares its access, and the guard enforces it for each role', async (t) => {
  const routes: Array<{ method: string; url: string; access: unknown }> = []
  const ctx = await startTestApp(t, {
    onRoute: (route: RouteOptions) => {
      for (const method of [route.method].flat()) {
        if (route.url.startsWith('/admin') && method !== 'HEAD')
          routes.push({ method, url: route.url, access: (route.config as { access?: unknown } | undefined)?.access })
      }
    },
  })
  t.ok(routes.length >= 15, `the route list was walked (${routes.length} /admin routes)`)

  const undeclared = routes.filter((r) => !ACCESS.includes(r.access as (typeof ACCESS)[number]))
  t.same(
    undeclared.map((r) => `${r.method} ${r.url}`),
    [],
    "every /admin route declares config.access: 'public' | 'viewer' | 'operator' | 'admin'",
  )

  const agents = {
    viewer: await signedIn(ctx, 'viewer'),
    operator: await signedIn(ctx, 'operator'),
    admin: await signedIn(ctx, 'admin'),
  }
  const anonymous = new Agent()
  const send = (agent: Agent, method: string, path: string) =>
    method === 'GET' ? agent.get(`${ctx.url}${path}`) : agent.request(`${ctx.url}${path}`, { method })

  for (const route of routes) {
    if (route.access === 'public' || undeclared.includes(route)) continue
    const needed = route.access as OperatorRole
    const path = concrete(route.url)
    const nobody = await send(anonymous, route.method, path)
    t.equal(nobody.status, 303, `${route.method} ${route.url}: nobody is sent to sign in`)
    t.match(nobody.location ?? '', /^\/admin\/sign-in/, `${route.method} ${route.url}: to the sign-in page`)
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const res = await send(agents[role], route.method, path)
      const refused = res.status === 403 && res.text.includes('Not allowed for your role')
      t.equal(refused, RANK[role] < RANK[needed], `${route.method} ${route.url} as ${role} (needs ${needed})`)
    }
  }

  // Every refusal is audited with who, what and why (no URL query, no ids beyond the pattern).
  const refusals = await ctx.db
    .selectFrom('audit_events')
    .select(['actor', 'details'])
    .where('type', '=', 'access.refused')
    .execute()
  const expected = routes.filter((r) => r.access === 'operator' || r.access === 'admin')
  const expectedCount =
    expected.filter((r) => r.access === 'operator').length + 2 * expected.filter((r) => r.access === 'admin').length
  t.equal(refusals.length, expectedCount, 'one audit event per refusal')
  t.ok(refusals.every((r) => /^operator:(viewer|operator)-1$/.test(r.actor)))
  t.ok(
    ctx.logs.some((l) => l.msg === 'operator role refused' && l.level === 40),
    'a warn line per refusal',
  )
})

t.test('views offer only what the role may do', async (t) => {
  const ctx = await startTestApp(t)
  const viewer = await signedIn(ctx, 'viewer')
  const admin = await signedIn(ctx, 'admin')
  const dashViewer = await viewer.get(`${ctx.url}/admin`)
  t.equal(dashViewer.status, 200)
  t.notMatch(dashViewer.text, 'action="/admin/rollouts"', 'no create form for a viewer')
  t.notMatch(dashViewer.text, 'href="/admin/operators"', 'no operators link for a viewer')
  const dashAdmin = await admin.get(`${ctx.url}/admin`)
  t.match(dashAdmin.text, 'action="/admin/rollouts"')
  t.match(dashAdmin.text, 'href="/admin/operators"')
  t.notMatch((await viewer.get(`${ctx.url}/admin/reports`)).text, 'action="/admin/reports/run"')
  t.notMatch((await viewer.get(`${ctx.url}/admin/apps`)).text, '/retire"')
  t.match((await admin.get(`${ctx.url}/admin/apps`)).text, '/retire"')
})

t.test('a disabled account or a new role applies on the next request', async (t) => {
  const ctx = await startTestApp(t)
  const admin = await signedIn(ctx, 'admin')
  const ops = await signedIn(ctx, 'operator')
  const target = await ctx.db
    .selectFrom('operators')
    .select('id')
    .where('username', '=', 'operator-1')
    .executeTakeFirstOrThrow()
  const page = await admin.get(`${ctx.url}/admin/operators`)
  t.equal(page.status, 200)
  t.match(page.text, 'operator-1')
  const csrf = hiddenField(page.text, '_csrf')

  const demote = await admin.post(`${ctx.url}/admin/operators/${target.id}`, {
    _csrf: csrf,
    action: 'role',
    role: 'viewer',
  })
  t.equal(demote.status, 303)
  const refused = await ops.get(`${ctx.url}/admin/rollouts/1/links/1`)
  t.equal(refused.status, 403, 'the demoted session is refused an operator page at once')

  const disable = await admin.post(`${ctx.url}/admin/operators/${target.id}`, { _csrf: csrf, action: 'disable' })
  t.equal(disable.status, 303)
  const out = await ops.get(`${ctx.url}/admin`)
  t.equal(out.status, 303, 'the disabled session is signed out')
  const again = await ops.get(`${ctx.url}/admin/sign-in`)
  const retry = await ops.post(`${ctx.url}/admin/sign-in`, {
    _csrf: hiddenField(again.text, '_csrf'),
    username: 'operator-1',
    password: OPERATOR_PASSWORD,
  })
  t.equal(retry.status, 401, 'a disabled account cannot sign in with its password')

  const self = await ctx.db
    .selectFrom('operators')
    .select('id')
    .where('username', '=', 'admin-1')
    .executeTakeFirstOrThrow()
  const own = await admin.post(`${ctx.url}/admin/operators/${self.id}`, { _csrf: csrf, action: 'disable' })
  t.equal(own.status, 400, 'nobody disables their own account')
  const bad = await admin.post(`${ctx.url}/admin/operators/${target.id}`, { _csrf: csrf, action: 'role', role: 'root' })
  t.equal(bad.status, 400, 'an unknown role is a 400 page')
  const noRole = await admin.post(`${ctx.url}/admin/operators/${target.id}`, { _csrf: csrf, action: 'role' })
  t.equal(noRole.status, 400, 'a role change without a role is a 400 page')
  const missing = await admin.post(`${ctx.url}/admin/operators/999999`, { _csrf: csrf, action: 'enable' })
  t.equal(missing.status, 404)

  const events = await ctx.db.selectFrom('audit_events').select('type').where('type', 'like', 'operator.%').execute()
  t.same(events.map((e) => e.type).sort(), ['operator.disabled', 'operator.role_changed'])
})
