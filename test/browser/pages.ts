// Every page of Scope Ledger, for the page-by-page browser checks in page-checks.ts: no sideways
// scrolling at phone widths, no serious or critical axe-core violation, screenshots to look at.
//
// HOW TO ADD A PAGE
//   Append one entry to PAGES below:
//     { name: 'admin-webhooks', as: 'operator', path: () => '/admin/webhooks', text: 'Webhooks' }
//   - name:   unique; the screenshots are test-output/screenshots/page-<name>-<width>.png.
//   - as:     whose browser session opens it (an Actor: the signed-in operator, 'anonymous', or
//             one of the seeded end users, see seedApp()).
//   - path:   for a GET, built from the seeded ids (s.rolloutId, s.users.ben, s.links.ben, ...).
//     open:   instead of path, for a page reached by clicking or submitting (a POST result);
//             it receives a fresh page of that actor and the seeded app, and returns the
//             navigation's response (or null when there is none to check).
//   - status: the HTTP status the page must answer with (default 200).
//   - text:   words that must be on the page, so a redirect to the wrong page cannot pass.
//   - calm:   an ordinary state for an end user: nothing on it may be styled as a warning.
//   Pages outside /admin and /sandbox are end-user pages and must also speak to end users:
//   "companies" (never "issuers"), no RFC citations, scope ids only after their plain words, and
//   never "Connected" next to an ended connection (see endUserProblems in page-checks.ts).
//   Need data the seed does not make yet (an API key, a webhook, an import run)? Add it to
//   seedApp() over HTTP, like a person would, and expose its id on Seeded.
//   Entries run in order and each opens once (then the window is resized), so an entry that
//   changes state (a one-shot POST) only affects the entries after it: prefer giving it its own
//   seeded user.
import type { Page, Response } from 'playwright-core'
import { readTokens } from '../../src/grants/tokens.js'
import { unsubscribeToken } from '../../src/mail/opt-out.js'
import { type TestApp, buildRollouts } from '../helpers/app.js'
import { type Agent, hiddenField } from '../helpers/browser-agent.js'
import { connectUser, signInOperator } from '../helpers/connect.js'
import { answerConsent, basic, revokeRequest } from '../sandbox/helpers.js'

export type Actor = 'operator' | 'anonymous' | 'ada' | 'ben' | 'chen' | 'dana' | 'eli' | 'farah' | 'gus' | 'hal'

export interface PageCase {
  name: string
  as: Actor
  path?: (s: Seeded) => string
  open?: (page: Page, s: Seeded) => Promise<Response | null>
  status?: number
  text: string
  calm?: boolean
}

export interface Seeded {
  app: TestApp
  /** Browser sessions: the cookies each actor's Agent collected (session, sandbox sign-in). */
  agents: Record<Exclude<Actor, 'anonymous'>, Agent>
  users: Record<Exclude<Actor, 'operator' | 'anonymous'>, number>
  apps: { v1: number; v2: number }
  rolloutId: number
  archivedRolloutId: number
  links: { ben: string; eli: string }
  reportRunId: number
}

export const PAGES: PageCase[] = [
  // --- end users ------------------------------------------------------------------------------
  { name: 'home-not-connected', as: 'anonymous', path: () => '/', text: 'Connect your Carta account' },
  { name: 'home-connected', as: 'ben', path: () => '/', text: 'Harbor', calm: true },
  { name: 'home-connected-every-permission', as: 'ada', path: () => '/', text: 'Lumen', calm: true },
  { name: 'home-connected-partial', as: 'chen', path: () => '/', text: 'Chen Wei', calm: true },
  { name: 'home-identity-not-shared', as: 'farah', path: () => '/', text: 'Your Carta account', calm: true },
  { name: 'home-needs-reconnect', as: 'dana', path: () => '/', text: 'Reconnect' },
  { name: 'home-just-reauthorized', as: 'eli', path: () => '/?reauthorized=1', text: 'up to date', calm: true },
  // Gus's tokens were revoked at Carta: this very visit finds out (the grant breaks on the way).
  { name: 'home-connection-ends-now', as: 'gus', path: () => '/', text: 'Reconnect' },
  { name: 'reauthorize-link', as: 'anonymous', path: (s) => s.links.ben, text: 'Continue to Carta', calm: true },
  { name: 'link-used-410', as: 'anonymous', path: (s) => s.links.eli, status: 410, text: 'already been used' },
  {
    name: 'link-tampered-404',
    as: 'anonymous',
    path: (s) => `${s.links.ben.slice(0, -3)}AAA`,
    status: 404,
    text: 'not valid',
  },
  { name: 'feature-issuers', as: 'ben', path: () => '/features/issuers', text: 'Your companies', calm: true },
  {
    name: 'feature-cap-table',
    as: 'ada',
    path: () => '/features/issuers/iss_lumen/cap-table',
    text: 'Cap table summary',
    calm: true,
  },
  {
    name: 'feature-cap-table-restricted-403',
    as: 'ada',
    path: () => '/features/issuers/iss_quill/cap-table',
    status: 403,
    text: 'did not give this integration access',
  },
  {
    name: 'feature-cap-table-not-found-404',
    as: 'ada',
    path: () => '/features/issuers/iss_nope/cap-table',
    status: 404,
    text: 'Carta has no such company',
  },
  {
    name: 'feature-gate-cap-table',
    as: 'ben',
    path: () => '/features/issuers/iss_harbor/cap-table',
    status: 403,
    text: 'Reauthorize',
  },
  { name: 'feature-gate-issuers', as: 'chen', path: () => '/features/issuers', status: 403, text: 'Reauthorize' },
  { name: 'feature-reconnect-409', as: 'dana', path: () => '/features/issuers', status: 409, text: 'Reconnect' },
  {
    name: 'error-400',
    as: 'ada',
    path: () => '/features/issuers/not%20an%20id/cap-table',
    status: 400,
    text: 'not valid',
  },
  { name: 'error-404', as: 'anonymous', path: () => '/no/such/page', status: 404, text: 'Page not found' },

  // --- the Carta sandbox ------------------------------------------------------------------------
  { name: 'sandbox-home', as: 'anonymous', path: () => '/sandbox/', text: 'Demo users' },
  {
    name: 'sandbox-sign-in',
    as: 'anonymous',
    open: (page, s) => page.goto(`${s.app.url}/carta/connect?app=production-v2`),
    text: 'Choose a demo user',
  },
  {
    name: 'sandbox-consent',
    as: 'anonymous',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/carta/connect?app=production-v2`)
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().includes('/sandbox/o/authorize/') && r.request().method() === 'GET'),
        page.click('button[name=user_id][value=cu_1002]'),
      ])
      await page.waitForLoadState()
      return response
    },
    text: 'wants access to your Carta account',
  },
  {
    name: 'sandbox-error',
    as: 'anonymous',
    path: () => '/sandbox/o/authorize/?client_id=nobody&response_type=code',
    status: 400,
    text: 'Unknown application',
  },

  // --- operators ----------------------------------------------------------------------------------
  { name: 'admin-sign-in', as: 'anonymous', path: () => '/admin/sign-in', text: 'Operator sign-in' },
  {
    name: 'admin-sign-in-refused',
    as: 'anonymous',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/admin/sign-in`)
      await page.fill('#username', 'ops')
      await page.fill('#password', 'not the password at all')
      const [response] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')])
      return response
    },
    status: 401,
    text: 'Operator sign-in',
  },
  { name: 'admin-rollouts', as: 'operator', path: () => '/admin', text: 'New rollout' },
  { name: 'admin-rollouts-other-app', as: 'operator', path: (s) => `/admin?app=${s.apps.v1}`, text: 'Production v1' },
  { name: 'admin-rollout', as: 'operator', path: (s) => `/admin/rollouts/${s.rolloutId}`, text: 'Users to bring over' },
  {
    name: 'admin-rollout-link-issued',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}?link=${s.users.ben}`,
    text: 'Users to bring over',
  },
  {
    name: 'admin-rollout-filtered',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}?scope=read_issuer_info&sort=newest`,
    text: 'Users to bring over',
  },
  {
    name: 'admin-rollout-archived',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.archivedRolloutId}`,
    text: 'Unarchive this rollout',
  },
  { name: 'admin-rollout-done', as: 'operator', path: (s) => `/admin/rollouts/${s.rolloutId}/done`, text: 'Done:' },
  {
    name: 'admin-rollout-archive-confirm',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}/archive`,
    text: 'Archive Cap table summary?',
  },
  {
    name: 'admin-rollouts-duplicate-warning',
    as: 'operator',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/admin`)
      await page.selectOption('#app-choice', String(s.apps.v2))
      await page.fill('#name', 'Cap table again')
      const [response] = await Promise.all([page.waitForNavigation(), page.click('button:has-text("Create rollout")')])
      return response
    },
    status: 409,
    text: 'already targets Production v2',
  },
  {
    name: 'admin-link',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}/links/${s.users.ben}`,
    text: 'Reauthorization link',
  },
  {
    name: 'admin-links-bulk',
    as: 'operator',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/admin/rollouts/${s.rolloutId}`)
      const [response] = await Promise.all([
        page.waitForNavigation(),
        page.click('button:has-text("Issue links for everyone in this filter")'),
      ])
      return response
    },
    text: 'Links issued',
  },
  // Email (src/mail/): the preview, a campaign's effect on the rollout page, the funnel's lists,
  // the opt-out page and the local mailbox the campaign filled.
  {
    name: 'admin-mail-preview',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}/mail?selection=everyone`,
    text: 'Email reauthorization links',
  },
  {
    name: 'admin-mail-campaign-started',
    as: 'operator',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/admin/rollouts/${s.rolloutId}/mail?selection=everyone`)
      const [response] = await Promise.all([page.waitForNavigation(), page.click('button:has-text("Email ")')])
      await s.app.app.jobs.run('mail')
      return response
    },
    text: 'started',
  },
  {
    name: 'admin-funnel',
    as: 'operator',
    path: (s) => `/admin/rollouts/${s.rolloutId}/funnel?step=issued`,
    text: 'link issued',
  },
  {
    name: 'mail-unsubscribe',
    as: 'anonymous',
    path: (s) => `/mail/unsubscribe/${unsubscribeToken(s.app.config.linkSigningSecret, s.users.ben)}`,
    text: 'Stop these emails',
  },
  { name: 'sandbox-mail', as: 'anonymous', path: () => '/sandbox/mail', text: 'Local mailbox' },
  {
    name: 'sandbox-mail-message',
    as: 'anonymous',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/sandbox/mail`)
      const [response] = await Promise.all([page.waitForNavigation(), page.click('td a')])
      return response
    },
    text: 'Links in this message',
  },
  { name: 'admin-user', as: 'operator', path: (s) => `/admin/users/${s.users.ben}`, text: 'Grant history' },
  { name: 'admin-user-revoked', as: 'operator', path: (s) => `/admin/users/${s.users.dana}`, text: 'Grant history' },
  { name: 'admin-revoke', as: 'operator', path: (s) => `/admin/users/${s.users.chen}/revoke`, text: 'Revoke' },
  {
    name: 'admin-revoke-done',
    as: 'operator',
    open: async (page, s) => {
      await page.goto(`${s.app.url}/admin/users/${s.users.hal}/revoke`)
      const [response] = await Promise.all([page.waitForNavigation(), page.click('button:has-text("Revoke access")')])
      return response
    },
    text: 'revoked',
  },
  { name: 'admin-users', as: 'operator', path: () => '/admin/users', text: 'Users' },
  { name: 'admin-users-search', as: 'operator', path: () => '/admin/users?q=ben&by=name', text: 'Ben' },
  { name: 'admin-apps', as: 'operator', path: () => '/admin/apps', text: 'Carta apps' },
  { name: 'admin-operators', as: 'operator', path: () => '/admin/operators', text: 'Operators' },
  { name: 'admin-apps-retire', as: 'operator', path: (s) => `/admin/apps/${s.apps.v2}/retire`, text: 'Retire' },
  {
    name: 'admin-apps-retire-not-current',
    as: 'operator',
    path: (s) => `/admin/apps/${s.apps.v1}/retire`,
    text: 'Its users reconnect with',
  },
  { name: 'admin-audit', as: 'operator', path: () => '/admin/audit', text: 'Audit trail' },
  { name: 'admin-api-keys', as: 'operator', path: () => '/admin/api-keys', text: 'API keys' },
  { name: 'admin-webhooks', as: 'operator', path: () => '/admin/webhooks', text: 'Webhooks' },
  { name: 'api-docs', as: 'anonymous', path: () => '/api/docs', text: 'Scope Ledger API', calm: true },
  {
    name: 'admin-audit-filtered',
    as: 'operator',
    path: (s) => `/admin/audit?user=${s.users.eli}`,
    text: 'Audit trail',
  },
  { name: 'admin-reports', as: 'operator', path: () => '/admin/reports', text: 'Coverage over time' },
  {
    name: 'admin-reports-trend-table',
    as: 'operator',
    open: async (page, s) => {
      const response = await page.goto(`${s.app.url}/admin/reports`)
      await page.click('summary:has-text("The same numbers as a table")')
      return response
    },
    text: 'All members',
  },
  {
    name: 'admin-report-file',
    as: 'operator',
    path: (s) => `/admin/reports/runs/${s.reportRunId}/report.html`,
    text: 'Scope coverage report',
  },
  { name: 'admin-imports', as: 'operator', path: () => '/admin/imports', text: 'Scope discovery' },
  {
    // The upload form's result: the run's page with its summary and a rejected line.
    name: 'admin-import-run',
    as: 'operator',
    open: (page, s) => uploadImport(page, s, false),
    text: 'Rejected lines',
  },
  { name: 'admin-import-dry-run', as: 'operator', open: (page, s) => uploadImport(page, s, true), text: 'Dry run' },
  { name: 'admin-error-400', as: 'operator', path: () => '/admin/audit?user=someone', status: 400, text: 'Invalid' },
  { name: 'admin-error-404', as: 'operator', path: () => '/admin/rollouts/99999', status: 404, text: 'not found' },
]

/** Uploads a small JSON Lines file (one line refused) through the /admin/imports form. */
async function uploadImport(page: Page, s: Seeded, dryRun: boolean): Promise<Response | null> {
  await page.goto(`${s.app.url}/admin/imports`)
  const lines = [
    { carta_user_id: `imp_${dryRun ? 'd' : 'r'}1`, client_id: 'scope-ledger-production-v1', email: 'ivy@example.com' },
    { carta_user_id: `imp_${dryRun ? 'd' : 'r'}2`, client_id: 'no-such-client' },
  ]
  await page.setInputFiles('#import-file', {
    name: 'estate.jsonl',
    mimeType: 'application/x-ndjson',
    buffer: Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n')),
  })
  if (dryRun) await page.check('input[name="dry_run"]')
  const [response] = await Promise.all([page.waitForNavigation(), page.click('button:has-text("Import")')])
  return response
}

const V2_ALL = ['read_user_info', 'read_issuer_info', 'read_issuer_capitalizationtablesummary']

/**
 * A realistic ledger built the way people build it, over HTTP: end users connect through the
 * sandbox (some granting only part), an operator signs in, creates a rollout (and archives a
 * second one), issues links, revokes a user, runs reports; one user follows a link through.
 */
export async function seedApp(app: TestApp): Promise<Seeded> {
  const ops = await signInOperator(app)
  const connect = async (cartaUser: string, appKey: string, grant?: string[]) => {
    const c = await connectUser(app, { cartaUser, appKey, ...(grant ? { grant } : {}) })
    return c
  }
  const ada = await connect('cu_1001', 'production-v2')
  const ben = await connect('cu_1002', 'production-v1')
  const chen = await connect('cu_1003', 'production-v2', ['read_user_info', 'read_issuer_capitalizationtablesummary'])
  const dana = await connect('cu_1004', 'production-v1')
  const eli = await connect('cu_1005', 'production-v1')
  // Without read_user_info Carta never says who they are: two anonymous users bound to sessions.
  const farah = await connect('cu_1006', 'production-v2', [
    'read_issuer_info',
    'read_issuer_capitalizationtablesummary',
  ])
  const gus = await connect('cu_1001', 'production-v2', ['read_issuer_info'])
  const hal = await connect('cu_1002', 'production-v1', ['read_issuer_info'])

  const apps = Object.fromEntries(
    (await app.db.selectFrom('oauth_apps').select(['id', 'key']).execute()).map((a) => [a.key, a.id]),
  )
  const csrfFrom = async (path: string) => hiddenField((await ops.get(`${app.url}${path}`)).text, '_csrf')
  const post = async (path: string, form: Record<string, string | string[]>, from = '/admin') => {
    const res = await ops.post(`${app.url}${path}`, { _csrf: await csrfFrom(from), ...form })
    if (res.status >= 400) throw new Error(`POST ${path} answered ${res.status}: ${res.text.slice(0, 300)}`)
    return res
  }
  const createRollout = async (name: string, appId: number, scopes: string[]) => {
    const res = await post('/admin/rollouts', { name, app_id: String(appId), scopes })
    return Number(/\/admin\/rollouts\/(\d+)$/.exec(res.location ?? '')![1])
  }
  const rolloutId = await createRollout('Cap table summary', apps['production-v2']!, V2_ALL)
  const archivedRolloutId = await createRollout('Issuer list', apps['production-v1']!, ['read_issuer_info'])
  await buildRollouts(app.app)
  await post(`/admin/rollouts/${archivedRolloutId}/archive`, { confirm: 'yes' })

  const issue = async (userId: number) => {
    await post(`/admin/rollouts/${rolloutId}/links`, { user_id: String(userId) })
    const page = await ops.get(`${app.url}/admin/rollouts/${rolloutId}/links/${userId}`)
    return /id="link-url"[^>]*value="([^"]+)"/.exec(page.text)![1]!.replace(/&amp;/g, '&')
  }
  const benLink = await issue(ben.userId)
  const eliLink = await issue(eli.userId)
  await post(`/admin/rollouts/${rolloutId}/links/bulk`, { scope: '', app: '', q: '' })
  await post('/admin/reports/run', {}, '/admin/reports')

  // Eli follows the link through Carta's consent; the old grant is replaced.
  const linkPage = await eli.agent.get(eliLink)
  const toCarta = await eli.agent.post(eliLink, { _csrf: hiddenField(linkPage.text, '_csrf') })
  const back = await answerConsent(eli.agent, toCarta.location!, { decision: 'allow' })
  const landed = await eli.agent.get(back.toString())
  if (landed.status !== 303) throw new Error(`Eli's reauthorization failed: ${landed.status}`)

  // Dana's access is revoked by the operator.
  await post(`/admin/users/${dana.userId}/revoke`, {}, `/admin/users/${dana.userId}/revoke`)

  // Gus's tokens die at Carta (revoked elsewhere): the next use finds out and asks to reconnect.
  const tokens = await readTokens(app.db, app.app.deps.cipher, gus.grantId)
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  for (const token of [tokens!.refreshToken!, tokens!.accessToken])
    await revokeRequest(`${app.url}/sandbox`, { token }, basic(v2.clientId, v2.clientSecret!))

    // A second report a few hours later, so the trend has two points.
  ;(app.clock as { advance?: (ms: number) => void }).advance?.(6 * 3600 * 1000)
  await post('/admin/reports/run', {}, '/admin/reports')
  const run = await app.db.selectFrom('report_runs').select('id').orderBy('id', 'desc').executeTakeFirstOrThrow()

  return {
    app,
    agents: {
      operator: ops,
      ada: ada.agent,
      ben: ben.agent,
      chen: chen.agent,
      dana: dana.agent,
      eli: eli.agent,
      farah: farah.agent,
      gus: gus.agent,
      hal: hal.agent,
    },
    users: {
      ada: ada.userId,
      ben: ben.userId,
      chen: chen.userId,
      dana: dana.userId,
      eli: eli.userId,
      farah: farah.userId,
      gus: gus.userId,
      hal: hal.userId,
    },
    apps: { v1: apps['production-v1']!, v2: apps['production-v2']! },
    rolloutId,
    archivedRolloutId,
    links: { ben: benLink, eli: eliLink },
    reportRunId: Number(run.id),
  }
}
