// The sandbox on its own port: buildSandbox() in-process, and `tsx src/sandbox/standalone.ts`
// as a child process (as the multi-instance tests in test/multi/ run it).
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, projectRoot } from '../../src/config.js'
import { buildSandbox } from '../../src/sandbox/build.js'
import { standaloneSettings } from '../../src/sandbox/standalone.js'
import { freePort } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { api, authorizeUrl, basic, control, getTokens, tokenRequest } from './helpers.js'

const SECRET = 'standalone-test-secret-0123456789'

function appsFile(dir: string, sandboxPort: number, prefix = ''): string {
  const file = join(dir, 'apps.json')
  const base = `http://127.0.0.1:${sandboxPort}${prefix}`
  writeFileSync(
    file,
    JSON.stringify({
      apps: [
        {
          key: 'prod',
          name: 'Prod',
          environment: 'production',
          clientId: 'sl-prod',
          clientSecretEnv: 'SB_TEST_SECRET',
          authBaseUrl: base,
          apiBaseUrl: base,
          scopes: ['read_user_info', 'read_issuer_info'],
          current: true,
        },
        // Real Carta: not served by the sandbox.
        {
          key: 'real',
          name: 'Real',
          environment: 'playground',
          clientId: 'real',
          clientSecretEnv: 'SB_TEST_REAL',
          authBaseUrl: 'https://login.playground.carta.team',
          apiBaseUrl: 'https://api.playground.carta.team',
          scopes: ['read_user_info'],
          current: true,
        },
      ],
    }),
  )
  return file
}

t.test('standalone settings', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-settings-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = appsFile(dir, 4555, '/carta')
  const env = {
    DATA_DIR: dir,
    CARTA_APPS_FILE: file,
    SB_TEST_SECRET: SECRET,
    SB_TEST_REAL: 'x',
    SANDBOX_PORT: '4555',
    SANDBOX_REDIRECT_URIS: 'http://127.0.0.1:3001/carta/callback, http://127.0.0.1:3002/carta/callback',
  }
  const s = standaloneSettings(env)
  t.equal(s.port, 4555)
  t.equal(s.host, '127.0.0.1')
  t.same(s.prefixes, ['/carta'])
  t.same(s.clients, [
    {
      clientId: 'sl-prod',
      clientSecret: SECRET,
      name: 'Prod',
      scopes: ['read_issuer_info', 'read_user_info'],
      redirectUris: ['http://127.0.0.1:3001/carta/callback', 'http://127.0.0.1:3002/carta/callback'],
    },
  ])
  t.same(s.rateLimit, { perSecond: 10, perMinute: 300 }, "Carta's documented rate limit by default")
  t.same(
    standaloneSettings({ ...env, SANDBOX_RATE_LIMIT_PER_SECOND: '0', SANDBOX_RATE_LIMIT_PER_MINUTE: '60' }).rateLimit,
    { perSecond: 0, perMinute: 60 },
  )
  const fails = (change: Record<string, string | undefined>, variable: string) => {
    let caught: unknown = null
    try {
      standaloneSettings({ ...env, ...change })
    } catch (err) {
      caught = err
    }
    t.ok(caught instanceof ConfigError, `${variable}: a ConfigError`)
    t.equal((caught as ConfigError | null)?.variable, variable)
  }
  fails({ SANDBOX_PORT: undefined }, 'SANDBOX_PORT')
  fails({ SANDBOX_PORT: '0' }, 'SANDBOX_PORT')
  fails({ SANDBOX_REDIRECT_URIS: '' }, 'SANDBOX_REDIRECT_URIS')
  fails({ SANDBOX_REDIRECT_URIS: 'not a url' }, 'SANDBOX_REDIRECT_URIS')
  fails({ SANDBOX_PORT: '4556' }, 'CARTA_APPS_FILE')
  fails({ SB_TEST_SECRET: undefined }, 'SB_TEST_SECRET')
  fails({ NODE_ENV: 'production' }, 'NODE_ENV')
  fails({ SANDBOX_RATE_LIMIT_PER_SECOND: 'lots' }, 'SANDBOX_RATE_LIMIT_PER_SECOND')
})

t.test('buildSandbox: the whole flow on its own port', async (t) => {
  const port = await freePort()
  const redirectUri = 'http://127.0.0.1:3999/carta/callback'
  const sandbox = await buildSandbox({
    clients: [
      {
        clientId: 'sl-prod',
        clientSecret: SECRET,
        name: 'Prod',
        scopes: ['read_issuer_info', 'read_user_info'],
        redirectUris: [redirectUri],
      },
    ],
    logLevel: 'silent',
  })
  await sandbox.listen({ host: '127.0.0.1', port })
  t.teardown(() => sandbox.close())
  const base = `http://127.0.0.1:${port}`
  const client = { clientId: 'sl-prod', clientSecret: SECRET, scopes: ['read_user_info', 'read_issuer_info'] }

  const agent = new Agent()
  const signInPage = await agent.get(
    authorizeUrl(base, {
      response_type: 'code',
      client_id: 'sl-prod',
      redirect_uri: redirectUri,
      scope: 'read_user_info',
      state: 's',
    }),
  )
  t.equal(signInPage.status, 200)
  t.match(signInPage.text, /Choose a demo user/)
  t.match(signInPage.headers.get('content-security-policy'), /form-action 'self' http:\/\/127\.0\.0\.1:3999/)
  const css = await fetch(`${base}/assets/style.css`)
  t.equal(css.status, 200, 'the stylesheet the pages link to is served')

  const tokens = await getTokens(agent, base, client, redirectUri, { userId: 'cu_1003' })
  t.equal(tokens.scope, undefined)
  t.same((await api(base, '/v1alpha1/user', tokens.access_token)).json, {
    id: 'cu_1003',
    email: 'chen.wei@quill.example',
    firstName: 'Chen',
    lastName: 'Wei',
  })
  const bad = await agent.get(
    authorizeUrl(base, {
      response_type: 'code',
      client_id: 'sl-prod',
      redirect_uri: 'http://127.0.0.1:3998/carta/callback',
      scope: 'read_user_info',
    }),
  )
  t.equal(bad.status, 400)
  t.equal(bad.location, null)
  const refreshed = await tokenRequest(
    base,
    { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    basic('sl-prod', SECRET),
  )
  t.equal(refreshed.status, 200)
  t.equal((await control(base, 'stats')).json.refreshes, 1)
  t.equal(sandbox.sandboxStore.counters.refreshes, 1)
  const missing = await fetch(`${base}/nothing-here`)
  t.equal(missing.status, 404)
})

t.test('tsx src/sandbox/standalone.ts runs as its own process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-standalone-'))
  const port = await freePort()
  const redirectUri = 'http://127.0.0.1:3998/carta/callback'
  const env = {
    ...process.env,
    NODE_ENV: 'test',
    DATA_DIR: dir,
    CARTA_APPS_FILE: appsFile(dir, port, '/sandbox'),
    SB_TEST_SECRET: SECRET,
    SB_TEST_REAL: 'real-secret',
    SANDBOX_PORT: String(port),
    SANDBOX_REDIRECT_URIS: redirectUri,
  }
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'src/sandbox/standalone.ts')],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  child.stdout!.on('data', (d) => (output += String(d)))
  child.stderr!.on('data', (d) => (output += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM')
    await exited
    rmSync(dir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${port}/sandbox`
  let up = false
  for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
    up = await fetch(`${base}/_control/stats`).then(
      (r) => r.ok,
      () => false,
    )
    if (!up) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(up, `standalone sandbox answers (output: ${output.slice(0, 500)})`)
  const tokens = await getTokens(
    new Agent(),
    base,
    { clientId: 'sl-prod', clientSecret: SECRET, scopes: ['read_user_info', 'read_issuer_info'] },
    redirectUri,
    { grant: ['read_issuer_info'] },
  )
  t.equal(tokens.scope, 'read_issuer_info')
  t.equal((await api(base, '/v1alpha1/issuers', tokens.access_token)).status, 200)
  t.match(output, /Sandbox Carta is on/)
  t.notOk(output.includes(tokens.access_token) || output.includes(tokens.refresh_token), 'no token in the log')
  t.notOk(output.includes(SECRET), 'no secret in the log')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'stops cleanly on SIGTERM')

  // A bad configuration stops it with a message naming the variable.
  const bad = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/sandbox/standalone.ts')], {
    env: { ...env, SANDBOX_REDIRECT_URIS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  bad.stderr!.on('data', (d) => (err += String(d)))
  const code = await new Promise<number | null>((resolve) => bad.once('exit', resolve))
  t.equal(code, 1)
  t.match(err, /Sandbox cannot start: Invalid configuration: SANDBOX_REDIRECT_URIS/)
})
