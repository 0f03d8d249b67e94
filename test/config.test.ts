import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, isLoopbackUrl, loadConfig } from '../src/config.js'

const dataDir = mkdtempSync(join(tmpdir(), 'sl-config-'))
const base = { NODE_ENV: 'test', DATA_DIR: dataDir }

function appsFile(apps: unknown[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sl-apps-')), 'apps.json')
  writeFileSync(file, JSON.stringify({ apps }))
  return file
}

const realApp = {
  key: 'production-v1',
  environment: 'production',
  clientId: 'client-1',
  clientSecretEnv: 'CARTA_V1_SECRET',
  authBaseUrl: 'https://login.app.carta.com',
  apiBaseUrl: 'https://api.carta.com',
  scopes: ['read_user_info'],
  current: true,
}

t.test('embedded defaults run on the sandbox with generated, persisted secrets', async (t) => {
  const config = loadConfig(base)
  t.equal(config.port, 3000)
  t.equal(config.publicUrl, 'http://localhost:3000')
  t.equal(config.database.kind, 'sqlite')
  t.ok(config.sandboxEnabled)
  t.equal(config.apps.length, 3)
  t.ok(config.apps.every((a) => a.sandbox && a.authBaseUrl === 'http://localhost:3000/sandbox'))
  t.same(config.apps.find((a) => a.key === 'production-v2')?.scopes, [
    'read_issuer_capitalizationtablesummary',
    'read_issuer_info',
    'read_user_info',
  ])
  t.ok(config.generatedSecrets.includes('TOKEN_ENCRYPTION_KEYS'))
  t.equal(config.cookieSecure, false, 'plain http on localhost cannot use secure cookies')
  const again = loadConfig(base)
  t.equal(again.sessionSecret, config.sessionSecret, 'generated secrets survive a restart')
  t.same([...again.tokenKeys.keys.keys()], [...config.tokenKeys.keys.keys()])
})

t.test('each bad value names its variable', async (t) => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ PORT: 'eighty' }, 'PORT', /whole number/],
    [{ PUBLIC_URL: 'ftp://x' }, 'PUBLIC_URL', /http\(s\) URL/],
    [{ DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL', /postgres:\/\//],
    [{ TOKEN_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, 'TOKEN_ENCRYPTION_KEYS', /base64-of-32-bytes/],
    [{ SESSION_SECRET: 'short' }, 'SESSION_SECRET', /at least 32/],
    [{ REPORT_CRON: 'every day' }, 'REPORT_CRON', /cron expression/],
    [{ REPORT_CRON: '99 6 * * *' }, 'REPORT_CRON', /cron expression of 5 or 6 fields.*: /],
    [{ REPORT_TIMEZONE: 'Mars/Olympus' }, 'REPORT_TIMEZONE', /IANA time zone/],
    [{ CARTA_APPS_FILE: '/nonexistent/apps.json' }, 'CARTA_APPS_FILE', /readable JSON/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of/],
    [{ CARTA_APPS_FILE: appsFile([realApp]) }, 'CARTA_V1_SECRET', /client secret/],
    [
      { CARTA_APPS_FILE: appsFile([{ ...realApp, authBaseUrl: 'http://login.example.com' }]), CARTA_V1_SECRET: 's' },
      'CARTA_APPS_FILE',
      /https/,
    ],
    [
      {
        CARTA_APPS_FILE: appsFile([realApp, { ...realApp, key: 'production-v2', clientId: 'client-2' }]),
        CARTA_V1_SECRET: 's',
      },
      'CARTA_APPS_FILE',
      /at most one/,
    ],
    [
      { CARTA_APPS_FILE: appsFile([realApp, { ...realApp, key: 'b' }]), CARTA_V1_SECRET: 's' },
      'CARTA_APPS_FILE',
      /clientId "client-1" twice/,
    ],
    [
      { CARTA_APPS_FILE: appsFile([{ ...realApp, scopes: [] }]), CARTA_V1_SECRET: 's' },
      'CARTA_APPS_FILE',
      /at least one scope/,
    ],
    [
      { CARTA_APPS_FILE: appsFile([{ ...realApp, environment: 'staging' }]), CARTA_V1_SECRET: 's' },
      'CARTA_APPS_FILE',
      /environment/,
    ],
    [{ NODE_ENV: 'production' }, 'SESSION_SECRET', /required when NODE_ENV=production/],
  ]
  for (const [env, variable, message] of cases) {
    let error: unknown
    try {
      loadConfig({ ...base, ...env })
    } catch (err) {
      error = err
    }
    t.type(error, ConfigError, `${JSON.stringify(env)} is refused`)
    t.equal((error as ConfigError).variable, variable, `${JSON.stringify(env)} names ${variable}`)
    t.match((error as Error).message, message)
  }
})

t.test('a real Carta app takes its secret from the named variable and turns the sandbox off', async (t) => {
  const config = loadConfig({
    ...base,
    CARTA_APPS_FILE: appsFile([realApp]),
    CARTA_V1_SECRET: 'from-env',
    PUBLIC_URL: 'https://ledger.example.com',
  })
  t.equal(config.apps[0]!.clientSecret, 'from-env')
  t.equal(config.apps[0]!.sandbox, false)
  t.equal(config.sandboxEnabled, false)
  t.equal(config.cookieSecure, true)
})

t.test('the sandbox cannot run in production', async (t) => {
  t.throws(
    () =>
      loadConfig({
        ...base,
        NODE_ENV: 'production',
        SESSION_SECRET: 'x'.repeat(32),
        LINK_SIGNING_SECRET: 'y'.repeat(32),
        TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
        CARTA_PLAYGROUND_CLIENT_SECRET: 'a',
        CARTA_PRODUCTION_V1_CLIENT_SECRET: 'b',
        CARTA_PRODUCTION_V2_CLIENT_SECRET: 'c',
      }),
    /SANDBOX cannot be enabled when NODE_ENV=production/,
  )
})

t.test('loopback detection allows plain http only for this machine', async (t) => {
  t.ok(isLoopbackUrl('http://127.0.0.1:9000/x'))
  t.ok(isLoopbackUrl('http://localhost:3000'))
  t.ok(isLoopbackUrl('http://[::1]:3000'))
  t.notOk(isLoopbackUrl('http://10.0.0.1'))
  t.notOk(isLoopbackUrl('https://login.app.carta.com'))
  t.notOk(isLoopbackUrl('not a url'))
})
