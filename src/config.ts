// Environment → typed, validated configuration. A bad or missing value stops start-up with a
// message naming the variable and what it expects (ConfigError).
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Cron } from 'croner'
import { parseScopes } from './scopes.js'

export type CartaEnvironment = 'playground' | 'production'
export type AppStatus = 'active' | 'retired'

/** One Carta OAuth application as declared in the apps file (secret resolved from the env). */
export interface CartaAppConfig {
  key: string
  name: string
  environment: CartaEnvironment
  clientId: string
  /** Name of the environment variable that holds the secret (documented, never the value). */
  clientSecretEnv: string
  clientSecret: string
  authBaseUrl: string
  apiBaseUrl: string
  scopes: string[]
  status: AppStatus
  current: boolean
  /** True when the app points at the embedded sandbox rather than real Carta. */
  sandbox: boolean
}

export type DatabaseConfig =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string; searchPath?: string; poolSize: number }

export interface Config {
  nodeEnv: 'development' | 'production' | 'test'
  host: string
  port: number
  /** Base URL browsers use to reach this app; redirect URIs are built from it. No trailing slash. */
  publicUrl: string
  dataDir: string
  database: DatabaseConfig
  sessionSecret: string
  /** AES-256-GCM keys by key id; `currentKeyId` encrypts, every key decrypts (rotation). */
  tokenKeys: { currentKeyId: string; keys: Map<string, Buffer> }
  linkSigningSecret: string
  linkTtlDays: number
  apps: CartaAppConfig[]
  appsFile: string
  /** Environment whose current app new connections use when none is named. */
  defaultEnvironment: CartaEnvironment
  sandboxEnabled: boolean
  /** The sandbox's API rate limit per client id, at Carta's documented numbers by default; 0 = off. */
  sandboxRateLimit: { perSecond: number; perMinute: number }
  cookieSecure: boolean
  trustProxy: boolean
  cartaTimeoutMs: number
  /** Scope discovery's share of Carta's API limit, per client id, across all instances. */
  discoveryRate: { perSecond: number; perMinute: number }
  /** Largest import file the dashboard accepts (IMPORT_UPLOAD_MAX_BYTES). */
  importUploadMaxBytes: number
  /** How long the upload form waits for its import before showing the run's page (IMPORT_UPLOAD_WAIT_MS). */
  importUploadWaitMs: number
  /** Requests per minute per client IP: OAuth endpoints (/carta/*, links) and operator sign-in. */
  rateLimits: { oauthPerMinute: number; signInPerMinute: number }
  /** Slow or stuck clients: how long a request may take to arrive, idle sockets, keep-alive, body size. */
  http: { requestTimeoutMs: number; connectionTimeoutMs: number; keepAliveTimeoutMs: number; bodyLimitBytes: number }
  /** emailTo: REPORT_EMAIL_TO, the addresses each report run is emailed to (empty: none). */
  reports: { cron: string; timeZone: string; dir: string; webhookUrl: string | null; emailTo: string[] }
  /**
   * The integrator's API (src/http/routes/api): requests per minute per key; origins a connect
   * session may return to; webhook deliveries in flight at once per instance and how long one
   * attempt may take (src/webhooks/delivery.ts).
   */
  api: { ratePerMinute: number; allowedReturnOrigins: string[]; webhookConcurrency: number; webhookTimeoutMs: number }
  /** Email (src/mail/): where messages go, who they come from, how fast, reminders, report readers. */
  mail: MailConfig
  logLevel: string
  /** json: pino's JSON lines; pretty: one readable line per event (log-pretty.ts); auto: pretty in development on a terminal. */
  logFormat: 'auto' | 'json' | 'pretty'
  /** Operator single sign-on; null when OPERATOR_OIDC_ISSUER is unset. */
  operatorSso: OperatorSsoConfig | null
  /** Operators may sign in with a password (OPERATOR_PASSWORD_SIGN_IN, default true). */
  passwordSignIn: boolean
  /** /metrics answers only this bearer token; null: /metrics is off (404). */
  metricsToken: string | null
  /** Names of secrets generated for local use (logged once at start so nobody ships them). */
  generatedSecrets: string[]
}

export interface MailConfig {
  /** smtp: SMTP_URL; mailbox: no SMTP_URL outside production, messages kept as files for /sandbox/mail; off: no email. */
  transport:
    | { kind: 'smtp'; url: string; user: string | null; password: string | null }
    | { kind: 'mailbox'; dir: string }
    | { kind: 'off' }
  from: string
  replyTo: string | null
  /** Messages per second the outbox worker sends at most; 0 = unlimited. */
  ratePerSecond: number
  /** Default reminder schedule of a new campaign, in days after the first email. */
  reminderDays: number[]
}

/** Operator single sign-on with OpenID Connect (README, "Operator single sign-on"). */
export interface OperatorSsoConfig {
  /** The issuer identifier; discovery reads `<issuer>/.well-known/openid-configuration`. */
  issuer: string
  clientId: string
  clientSecret: string
  scopes: string[]
  /** Lower-case e-mail domains let in (empty: any domain). */
  allowedDomains: string[]
  /** Values of `groupsClaim` let in (empty: any group). */
  allowedGroups: string[]
  groupsClaim: string
  /** Claim whose values map to roles via roleMap; null: roles are kept per account. */
  roleClaim: string | null
  roleMap: Map<string, 'viewer' | 'operator' | 'admin'>
  /** Role of an account made at its first sign-in when no claim maps one. */
  defaultRole: 'viewer' | 'operator' | 'admin'
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    expected: string,
  ) {
    super(`Invalid configuration: ${variable} ${expected}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

/**
 * The repository's root (views/, the default data/ and apps file are found from it): the nearest
 * folder above this module holding package.json, whether it runs from src/ (tsx) or dist/src/.
 */
export const projectRoot = findProjectRoot(dirname(fileURLToPath(import.meta.url)))

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(resolve(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) return resolve(from, '..')
  }
}
export const defaultAppsFile = resolve(projectRoot, 'src/carta/sandbox-apps.json')

const SANDBOX_URL = 'sandbox'

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = oneOf(env, 'NODE_ENV', ['development', 'production', 'test'], 'development')
  const port = integer(env, 'PORT', 3000, 0, 65535)
  const host = env.HOST?.trim() || 'localhost'
  const publicUrl = url(env, 'PUBLIC_URL', `http://localhost:${port}`).replace(/\/+$/, '')
  const dataDir = resolve(projectRoot, env.DATA_DIR?.trim() || 'data')
  const database = databaseConfig(env, dataDir)
  const generatedSecrets: string[] = []
  const devSecrets = new DevSecrets(dataDir, nodeEnv)

  const secret = (name: string, minLength: number): string => {
    const value = env[name]
    if (value !== undefined && value !== '') {
      if (value.length < minLength) throw new ConfigError(name, `must be at least ${minLength} characters`)
      return value
    }
    const generated = devSecrets.get(name, () => randomBytes(32).toString('base64url'))
    if (generated === null) throw new ConfigError(name, 'is required when NODE_ENV=production')
    generatedSecrets.push(name)
    return generated
  }

  const sessionSecret = secret('SESSION_SECRET', 32)
  const linkSigningSecret = secret('LINK_SIGNING_SECRET', 32)
  const tokenKeys = parseTokenKeys(env.TOKEN_ENCRYPTION_KEYS || undefined, () => {
    const generated = devSecrets.get('TOKEN_ENCRYPTION_KEYS', () => `dev1:${randomBytes(32).toString('base64')}`)
    if (generated === null) throw new ConfigError('TOKEN_ENCRYPTION_KEYS', 'is required when NODE_ENV=production')
    generatedSecrets.push('TOKEN_ENCRYPTION_KEYS')
    return generated
  })

  const appsFile = resolve(projectRoot, env.CARTA_APPS_FILE?.trim() || defaultAppsFile)
  const apps = loadApps(appsFile, env, publicUrl, devSecrets, generatedSecrets)
  const defaultEnvironment = oneOf(env, 'CARTA_DEFAULT_ENVIRONMENT', ['production', 'playground'], 'production')
  if (!apps.some((a) => a.environment === defaultEnvironment && a.current)) {
    throw new ConfigError(
      'CARTA_DEFAULT_ENVIRONMENT',
      `names "${defaultEnvironment}" but ${appsFile} has no current app in it`,
    )
  }
  const anySandboxApp = apps.some((a) => a.sandbox)
  const sandboxMode = oneOf(env, 'SANDBOX', ['auto', 'on', 'off'], 'auto')
  if (sandboxMode === 'off' && anySandboxApp) {
    throw new ConfigError('SANDBOX', `is off but ${appsFile} declares apps on the sandbox ("${SANDBOX_URL}")`)
  }
  const sandboxEnabled = sandboxMode === 'on' || anySandboxApp
  if (sandboxEnabled && nodeEnv === 'production') {
    throw new ConfigError('SANDBOX', 'cannot be enabled when NODE_ENV=production (it signs anyone in)')
  }

  const operatorSso = operatorSsoConfig(env)
  const passwordSignIn = oneOf(env, 'OPERATOR_PASSWORD_SIGN_IN', ['true', 'false'], 'true') === 'true'
  if (!passwordSignIn && !operatorSso)
    throw new ConfigError(
      'OPERATOR_PASSWORD_SIGN_IN',
      'can be false only with OPERATOR_OIDC_ISSUER set (nobody could sign in)',
    )
  const metricsToken = env.METRICS_TOKEN?.trim() || null
  if (metricsToken !== null && (metricsToken.length < 16 || !/^[\x21-\x7e]+$/.test(metricsToken)))
    throw new ConfigError('METRICS_TOKEN', 'must be at least 16 printable characters without spaces')

  const localHttp = isLoopbackUrl(publicUrl) && publicUrl.startsWith('http:')
  const cookieSecure = oneOf(env, 'COOKIE_SECURE', ['auto', 'true', 'false'], 'auto')

  return {
    nodeEnv,
    host,
    port,
    publicUrl,
    dataDir,
    database,
    sessionSecret,
    tokenKeys,
    linkSigningSecret,
    linkTtlDays: integer(env, 'LINK_TTL_DAYS', 14, 1, 365),
    apps,
    appsFile,
    defaultEnvironment,
    sandboxEnabled,
    sandboxRateLimit: {
      perSecond: integer(env, 'SANDBOX_RATE_LIMIT_PER_SECOND', 10, 0, 100_000),
      perMinute: integer(env, 'SANDBOX_RATE_LIMIT_PER_MINUTE', 300, 0, 100_000),
    },
    cookieSecure: cookieSecure === 'auto' ? !localHttp : cookieSecure === 'true',
    trustProxy: oneOf(env, 'TRUST_PROXY', ['false', 'true'], 'false') === 'true',
    cartaTimeoutMs: integer(env, 'CARTA_TIMEOUT_MS', 10_000, 100, 120_000),
    // Carta's documented 10/s bursts and 300/min less a small margin; the shared budget
    // (imports/budget.ts) holds them over any sliding window, not per fixed window.
    discoveryRate: {
      perSecond: integer(env, 'DISCOVERY_RATE_PER_SECOND', 9, 1, 100_000),
      perMinute: integer(env, 'DISCOVERY_RATE_PER_MINUTE', 280, 1, 1_000_000),
    },
    importUploadMaxBytes: integer(env, 'IMPORT_UPLOAD_MAX_BYTES', 50 * 1024 * 1024, 1024, 4 * 1024 * 1024 * 1024),
    importUploadWaitMs: integer(env, 'IMPORT_UPLOAD_WAIT_MS', 3000, 0, 50_000),
    rateLimits: {
      oauthPerMinute: integer(env, 'RATE_LIMIT_OAUTH_PER_MINUTE', 60, 1, 100_000),
      signInPerMinute: integer(env, 'RATE_LIMIT_SIGN_IN_PER_MINUTE', 10, 1, 100_000),
    },
    http: {
      requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 30_000, 1_000, 600_000),
      connectionTimeoutMs: integer(env, 'CONNECTION_TIMEOUT_MS', 60_000, 1_000, 3_600_000),
      keepAliveTimeoutMs: integer(env, 'KEEP_ALIVE_TIMEOUT_MS', 72_000, 1_000, 600_000),
      bodyLimitBytes: integer(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    },
    reports: {
      cron: cronExpression(env, 'REPORT_CRON', '0 6 * * *'),
      timeZone: timeZone(env, 'REPORT_TIMEZONE', 'UTC'),
      dir: resolve(projectRoot, env.REPORTS_DIR?.trim() || resolve(dataDir, 'reports')),
      webhookUrl: env.REPORT_WEBHOOK_URL ? url(env, 'REPORT_WEBHOOK_URL', '') : null,
      emailTo: reportEmailTo(env),
    },
    api: {
      ratePerMinute: integer(env, 'API_RATE_LIMIT_PER_MINUTE', 1200, 1, 10_000_000),
      allowedReturnOrigins: origins(env, 'API_ALLOWED_RETURN_ORIGINS'),
      webhookConcurrency: integer(env, 'WEBHOOK_CONCURRENCY', 8, 1, 64),
      webhookTimeoutMs: integer(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 500, 60_000),
    },
    mail: mailConfig(env, nodeEnv, dataDir, publicUrl),
    operatorSso,
    passwordSignIn,
    metricsToken,
    logLevel: oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    logFormat: oneOf(env, 'LOG_FORMAT', ['auto', 'json', 'pretty'], 'auto'),
    generatedSecrets,
  }
}

/** True for http(s) URLs whose host is loopback: the only hosts allowed plain HTTP (RFC 9700 §2.6). */
export function isLoopbackUrl(value: string): boolean {
  try {
    const host = new URL(value).hostname
    return host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
  } catch {
    return false
  }
}

// --- operator single sign-on -----------------------------------------------------------------

const ROLES = ['viewer', 'operator', 'admin'] as const
const CLAIM_NAME = /^[A-Za-z0-9_:./-]{1,100}$/

function list(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
}

function operatorSsoConfig(env: Env): OperatorSsoConfig | null {
  const issuerValue = env.OPERATOR_OIDC_ISSUER?.trim()
  if (!issuerValue) return null
  const issuer = url(env, 'OPERATOR_OIDC_ISSUER', '')
  // Plain HTTP only to a loopback issuer (a local test provider); anything else must be TLS.
  if (!issuer.startsWith('https:') && !isLoopbackUrl(issuer))
    throw new ConfigError('OPERATOR_OIDC_ISSUER', 'must use https (plain http only for loopback hosts)')
  const clientId = env.OPERATOR_OIDC_CLIENT_ID?.trim()
  if (!clientId) throw new ConfigError('OPERATOR_OIDC_CLIENT_ID', 'is required with OPERATOR_OIDC_ISSUER')
  const clientSecret = env.OPERATOR_OIDC_CLIENT_SECRET
  if (!clientSecret) throw new ConfigError('OPERATOR_OIDC_CLIENT_SECRET', 'is required with OPERATOR_OIDC_ISSUER')
  const allowedDomains = list(env, 'OPERATOR_OIDC_ALLOWED_DOMAINS').map((d) => d.toLowerCase().replace(/^@/, ''))
  const allowedGroups = list(env, 'OPERATOR_OIDC_ALLOWED_GROUPS')
  // Without either, anyone with an account at the provider (a public one, say) would get in.
  if (allowedDomains.length === 0 && allowedGroups.length === 0)
    throw new ConfigError(
      'OPERATOR_OIDC_ALLOWED_DOMAINS',
      'or OPERATOR_OIDC_ALLOWED_GROUPS must name who may sign in with OPERATOR_OIDC_ISSUER',
    )
  const claim = (name: string, fallback: string | null): string | null => {
    const value = env[name]?.trim() || fallback
    if (value !== null && !CLAIM_NAME.test(value)) throw new ConfigError(name, 'must be a claim name')
    return value
  }
  const roleMap = new Map<string, (typeof ROLES)[number]>()
  const mapping = list(env, 'OPERATOR_OIDC_ROLE_MAP')
  for (const entry of mapping.length ? mapping : ROLES.map((r) => `${r}=${r}`)) {
    const [value, role] = entry.split('=').map((p) => p.trim())
    if (!value || !(ROLES as readonly string[]).includes(role ?? ''))
      throw new ConfigError(
        'OPERATOR_OIDC_ROLE_MAP',
        'must be "claim-value=role,…" with roles viewer, operator or admin',
      )
    roleMap.set(value, role as (typeof ROLES)[number])
  }
  const scopes = (env.OPERATOR_OIDC_SCOPES?.trim() || 'openid email profile').split(/\s+/)
  if (!scopes.includes('openid')) throw new ConfigError('OPERATOR_OIDC_SCOPES', 'must include openid')
  return {
    issuer,
    clientId,
    clientSecret,
    scopes,
    allowedDomains,
    allowedGroups,
    groupsClaim: claim('OPERATOR_OIDC_GROUPS_CLAIM', 'groups')!,
    roleClaim: claim('OPERATOR_OIDC_ROLE_CLAIM', null),
    roleMap,
    defaultRole: oneOf(env, 'OPERATOR_OIDC_DEFAULT_ROLE', ROLES, 'viewer'),
  }
}

// --- apps file ---------------------------------------------------------------------------------

function loadApps(
  file: string,
  env: Env,
  publicUrl: string,
  devSecrets: DevSecrets,
  generated: string[],
): CartaAppConfig[] {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError('CARTA_APPS_FILE', `must name a readable JSON file (${file}: ${(err as Error).message})`)
  }
  const list = (raw as { apps?: unknown })?.apps
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError('CARTA_APPS_FILE', `must hold {"apps": [...]} with at least one app (${file})`)
  }
  const sandboxBase = `${publicUrl}/sandbox`
  const apps = list.map((entry, i) => parseApp(entry, `${file} apps[${i}]`, env, sandboxBase, devSecrets, generated))
  for (const field of ['key', 'clientId'] as const) {
    const seen = new Set<string>()
    for (const app of apps) {
      if (seen.has(app[field]))
        throw new ConfigError('CARTA_APPS_FILE', `declares ${field} "${app[field]}" twice (${file})`)
      seen.add(app[field])
    }
  }
  for (const environment of ['playground', 'production'] as const) {
    const current = apps.filter((a) => a.environment === environment && a.current)
    if (current.length > 1) {
      throw new ConfigError(
        'CARTA_APPS_FILE',
        `marks ${current.length} ${environment} apps as current; at most one may be (${file})`,
      )
    }
    if (current[0]?.status === 'retired') {
      throw new ConfigError('CARTA_APPS_FILE', `marks retired app "${current[0].key}" as current (${file})`)
    }
  }
  return apps
}

function parseApp(
  entry: unknown,
  where: string,
  env: Env,
  sandboxBase: string,
  devSecrets: DevSecrets,
  generated: string[],
): CartaAppConfig {
  const bad = (what: string): never => {
    throw new ConfigError('CARTA_APPS_FILE', `${where}: ${what}`)
  }
  if (typeof entry !== 'object' || entry === null) bad('must be an object')
  const e = entry as Record<string, unknown>
  const str = (name: string, pattern?: RegExp): string => {
    const v = e[name]
    if (typeof v !== 'string' || v.trim() === '') return bad(`"${name}" must be a non-empty string`)
    if (pattern && !pattern.test(v)) return bad(`"${name}" must match ${pattern}`)
    return v.trim()
  }
  const key = str('key', /^[a-z0-9][a-z0-9-]{0,62}$/)
  const environment = str('environment') as CartaEnvironment
  if (environment !== 'playground' && environment !== 'production')
    bad('"environment" must be "playground" or "production"')
  const status = (e.status === undefined ? 'active' : e.status) as AppStatus
  if (status !== 'active' && status !== 'retired') bad('"status" must be "active" or "retired"')
  if (!Array.isArray(e.scopes) || e.scopes.some((s) => typeof s !== 'string'))
    bad('"scopes" must be an array of strings')
  const scopes = parseScopes((e.scopes as string[]).join(' '))
  if (scopes.length === 0) bad('"scopes" must name at least one scope')
  const baseUrl = (name: string): [string, boolean] => {
    const v = str(name)
    if (v === SANDBOX_URL) return [sandboxBase, true]
    let u: URL
    try {
      u = new URL(v)
    } catch {
      return bad(`"${name}" must be an absolute URL or "${SANDBOX_URL}"`)
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackUrl(v))) {
      bad(`"${name}" must use https (plain http only for loopback hosts)`)
    }
    return [v.replace(/\/+$/, ''), false]
  }
  const [authBaseUrl, authSandbox] = baseUrl('authBaseUrl')
  const [apiBaseUrl, apiSandbox] = baseUrl('apiBaseUrl')
  if (authSandbox !== apiSandbox) bad('"authBaseUrl" and "apiBaseUrl" must both be "sandbox" or both real URLs')
  const clientSecretEnv = str('clientSecretEnv', /^[A-Z][A-Z0-9_]*$/)
  let clientSecret = env[clientSecretEnv]
  if (!clientSecret) {
    if (!authSandbox) throw new ConfigError(clientSecretEnv, `must hold the client secret of Carta app "${key}"`)
    // Sandbox apps get a generated secret shared by the client and the sandbox.
    clientSecret =
      devSecrets.get(clientSecretEnv, () => randomBytes(24).toString('base64url')) ?? bad('sandbox app in production')
    generated.push(clientSecretEnv)
  }
  return {
    key,
    name: typeof e.name === 'string' && e.name.trim() ? e.name.trim() : key,
    environment,
    clientId: str('clientId'),
    clientSecretEnv,
    clientSecret,
    authBaseUrl,
    apiBaseUrl,
    scopes,
    status,
    current: e.current === true,
    sandbox: authSandbox,
  }
}

// --- token keys --------------------------------------------------------------------------------

/** `kid:base64key[,kid:base64key…]`, each key 32 bytes; the first one encrypts new tokens. */
export function parseTokenKeys(value: string | undefined, fallback: () => string): Config['tokenKeys'] {
  const text = value ?? fallback()
  const keys = new Map<string, Buffer>()
  let currentKeyId = ''
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^([A-Za-z0-9_-]{1,32}):(.+)$/.exec(part)
    const key = match ? Buffer.from(match[2]!, 'base64') : undefined
    if (!match || !key || key.length !== 32) {
      throw new ConfigError(
        'TOKEN_ENCRYPTION_KEYS',
        'must be "keyid:base64-of-32-bytes[,keyid:…]" (generate one with `openssl rand -base64 32`)',
      )
    }
    if (keys.has(match[1]!)) throw new ConfigError('TOKEN_ENCRYPTION_KEYS', `repeats key id "${match[1]}"`)
    keys.set(match[1]!, key)
    currentKeyId ||= match[1]!
  }
  if (!currentKeyId) throw new ConfigError('TOKEN_ENCRYPTION_KEYS', 'must name at least one key')
  return { currentKeyId, keys }
}

// --- dev secrets -------------------------------------------------------------------------------

/**
 * Secrets generated for local runs, kept in `<dataDir>/dev-secrets.json` (mode 0600) so that a
 * restart can still decrypt stored tokens. Never used when NODE_ENV=production.
 */
class DevSecrets {
  private readonly file: string
  private values: Record<string, string> | null = null
  constructor(
    dataDir: string,
    private readonly nodeEnv: string,
  ) {
    this.file = resolve(dataDir, 'dev-secrets.json')
  }
  get(name: string, make: () => string): string | null {
    if (this.nodeEnv === 'production') return null
    if (this.values === null) {
      this.values = existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, string>) : {}
    }
    if (!this.values[name]) {
      this.values[name] = make()
      mkdirSync(dirname(this.file), { recursive: true })
      writeFileSync(this.file, JSON.stringify(this.values, null, 2), { mode: 0o600 })
    }
    return this.values[name]!
  }
}

// --- small parsers -----------------------------------------------------------------------------

function databaseConfig(env: Env, dataDir: string): DatabaseConfig {
  const urlValue = env.DATABASE_URL?.trim()
  if (urlValue) {
    let u: URL
    try {
      u = new URL(urlValue)
    } catch {
      throw new ConfigError('DATABASE_URL', 'must be a postgres://user@host:port/database URL')
    }
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
      throw new ConfigError(
        'DATABASE_URL',
        `must start with postgres:// (got "${u.protocol}"); leave it unset for SQLite`,
      )
    }
    const searchPath = env.DATABASE_SEARCH_PATH?.trim()
    if (searchPath && !/^[a-z_][a-z0-9_]*$/.test(searchPath))
      throw new ConfigError('DATABASE_SEARCH_PATH', 'must be a plain schema name')
    // Connections per instance; instances × pool size must stay under the server's max_connections.
    const poolSize = integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1000)
    return { kind: 'postgres', url: urlValue, poolSize, ...(searchPath ? { searchPath } : {}) }
  }
  const path = env.DATABASE_PATH?.trim() || resolve(dataDir, 'scope-ledger.db')
  return { kind: 'sqlite', path: isAbsolute(path) ? path : resolve(projectRoot, path) }
}

// A deliberately plain check (one @, no spaces or angle brackets): the SMTP server has the last word.
const EMAIL = /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/

function mailConfig(env: Env, nodeEnv: Config['nodeEnv'], dataDir: string, publicUrl: string): MailConfig {
  const smtpUrl = env.SMTP_URL?.trim()
  const fromValue = env.MAIL_FROM?.trim()
  let transport: MailConfig['transport']
  if (smtpUrl) {
    let u: URL
    try {
      u = new URL(smtpUrl)
    } catch {
      throw new ConfigError('SMTP_URL', 'must be an smtp:// or smtps:// URL')
    }
    if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:')
      throw new ConfigError('SMTP_URL', `must start with smtp:// or smtps:// (got "${u.protocol}")`)
    transport = {
      kind: 'smtp',
      url: smtpUrl,
      user: env.SMTP_USER?.trim() || null,
      password: env.SMTP_PASSWORD || null,
    }
  } else if (nodeEnv !== 'production') {
    transport = { kind: 'mailbox', dir: resolve(dataDir, 'mailbox') }
  } else {
    // Production without SMTP_URL: fine while email is not used, a clear error once it is.
    if (fromValue) throw new ConfigError('SMTP_URL', 'is required when NODE_ENV=production and MAIL_FROM is set')
    if (env.REPORT_EMAIL_TO?.trim())
      throw new ConfigError('SMTP_URL', 'is required when NODE_ENV=production and REPORT_EMAIL_TO is set')
    transport = { kind: 'off' }
  }
  const host = (() => {
    try {
      return new URL(publicUrl).hostname
    } catch {
      return 'localhost'
    }
  })()
  const from = fromValue || `Scope Ledger <no-reply@${host.includes('.') ? host : `${host}.localdomain`}>`
  const bare = /<([^>]+)>\s*$/.exec(from)?.[1] ?? from
  if (!EMAIL.test(bare))
    throw new ConfigError('MAIL_FROM', `must be an address, optionally "Name <address>" (got "${from}")`)
  const replyTo = env.MAIL_REPLY_TO?.trim() || null
  if (replyTo && !EMAIL.test(/<([^>]+)>\s*$/.exec(replyTo)?.[1] ?? replyTo))
    throw new ConfigError('MAIL_REPLY_TO', `must be an address (got "${replyTo}")`)
  const daysText = env.MAIL_REMINDER_DAYS?.trim() ?? '3,7'
  const reminderDays = parseReminderDays(daysText)
  if (reminderDays === null)
    throw new ConfigError(
      'MAIL_REMINDER_DAYS',
      `must be up to 5 whole days from 1 to 90, comma separated (got "${daysText}")`,
    )
  return {
    transport,
    from,
    replyTo,
    ratePerSecond: integer(env, 'MAIL_RATE_PER_SECOND', 10, 0, 100_000),
    reminderDays,
  }
}

/** REPORT_EMAIL_TO: comma-separated bare addresses, each checked, duplicates (any case) once. */
function reportEmailTo(env: Env): string[] {
  const text = env.REPORT_EMAIL_TO?.trim() ?? ''
  const seen = new Set<string>()
  const addresses: string[] = []
  for (const part of text.split(',')) {
    const address = part.trim()
    if (!address) continue
    if (!EMAIL.test(address))
      throw new ConfigError(
        'REPORT_EMAIL_TO',
        `must be email addresses separated by commas (got "${address.slice(0, 100)}")`,
      )
    if (seen.has(address.toLowerCase())) continue
    seen.add(address.toLowerCase())
    addresses.push(address)
  }
  if (addresses.length > 100) throw new ConfigError('REPORT_EMAIL_TO', 'lists at most 100 addresses')
  return addresses
}

/** "3,7" (or "3 7") → [3, 7]: increasing whole days 1..90, at most 5; "" → none; null when malformed. */
export function parseReminderDays(text: string): number[] | null {
  const parts = text.split(/[\s,]+/).filter(Boolean)
  if (parts.length > 5 || parts.some((p) => !/^\d{1,2}$/.test(p))) return null
  const days = parts.map(Number)
  if (days.some((d, i) => d < 1 || d > 90 || (i > 0 && d <= days[i - 1]!))) return null
  return days
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = env[name]?.trim()
  if (!value) return fallback
  if (!(allowed as readonly string[]).includes(value))
    throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got "${value}")`)
  return value as T
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = env[name]?.trim()
  if (!value) return fallback
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${value}")`)
  }
  return Number(value)
}

function url(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim() || fallback
  try {
    const u = new URL(value)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme')
  } catch {
    throw new ConfigError(name, `must be an http(s) URL (got "${value}")`)
  }
  return value
}

/** Comma-separated http(s) origins (scheme://host[:port], nothing after); https unless loopback. */
function origins(env: Env, name: string): string[] {
  const value = env[name]?.trim()
  if (!value) return []
  return value.split(',').map((one) => {
    const item = one.trim()
    let parsed: URL
    try {
      parsed = new URL(item)
    } catch {
      throw new ConfigError(name, `must list origins like https://app.example.com (got "${item}")`)
    }
    if (parsed.origin !== item.replace(/\/$/, '') || (parsed.protocol !== 'https:' && !isLoopbackUrl(item)))
      throw new ConfigError(name, `must list https origins without a path (got "${item}")`)
    return parsed.origin
  })
}

function cronExpression(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim() || fallback
  const fields = value.split(/\s+/)
  const expected = `must be a cron expression of 5 or 6 fields (seconds first when 6), e.g. "0 6 * * *" (got "${value}")`
  if (fields.length < 5 || fields.length > 6) throw new ConfigError(name, expected)
  try {
    // Parse it now (without scheduling) so a bad expression stops start-up with this message.
    new Cron(value, { paused: true }).stop()
  } catch (err) {
    throw new ConfigError(name, `${expected}: ${(err as Error).message}`)
  }
  return value
}

function timeZone(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim() || fallback
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value })
  } catch {
    throw new ConfigError(name, `must be an IANA time zone such as "UTC" or "Europe/Paris" (got "${value}")`)
  }
  return value
}
