// `npm run sandbox` / `tsx src/sandbox/standalone.ts`: the sandbox Carta on its own port.
//   SANDBOX_PORT            port to listen on (required, 1–65535)
//   SANDBOX_HOST            interface (default 127.0.0.1)
//   SANDBOX_REDIRECT_URIS   comma-separated redirect URIs registered for every client (required)
//   SANDBOX_RATE_LIMIT_PER_SECOND / _PER_MINUTE  the API's rate limit per client id (default 10
//                           and 300, Carta's documented numbers; 0 = off)
//   CARTA_APPS_FILE         the apps file the app instances use; its apps whose authBaseUrl and
//                           apiBaseUrl are loopback URLs on SANDBOX_PORT become the clients,
//                           with secrets from the variables the file names (as in src/config.ts)
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { ConfigError, isLoopbackUrl, loadConfig, type CartaAppConfig } from '../config.js'
import { buildSandbox } from './build.js'
import type { RateLimitSettings } from './rate-limit.js'
import type { SandboxClient } from './store.js'

type Env = Record<string, string | undefined>

export interface StandaloneSettings {
  host: string
  port: number
  clients: SandboxClient[]
  prefixes: string[]
  rateLimit: RateLimitSettings
  logLevel: string
}

/** Whether a base URL is a loopback URL on `port` (the sandbox itself). */
function pointsAt(url: string, port: number): boolean {
  if (!isLoopbackUrl(url)) return false
  const u = new URL(url)
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80)) === port
}

export function standaloneSettings(env: Env): StandaloneSettings {
  if (env.NODE_ENV === 'production')
    throw new ConfigError('NODE_ENV', 'must not be production: the sandbox signs anyone in')
  const portText = env.SANDBOX_PORT?.trim() ?? ''
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
    throw new ConfigError('SANDBOX_PORT', `must be a port number from 1 to 65535 (got "${portText}")`)
  const redirectUris = (env.SANDBOX_REDIRECT_URIS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (redirectUris.length === 0)
    throw new ConfigError(
      'SANDBOX_REDIRECT_URIS',
      'must list the redirect URIs to register, comma-separated (e.g. http://127.0.0.1:3000/carta/callback)',
    )
  for (const uri of redirectUris) {
    let ok = false
    try {
      const u = new URL(uri)
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && !u.hash
    } catch {}
    if (!ok)
      throw new ConfigError(
        'SANDBOX_REDIRECT_URIS',
        `must hold absolute http(s) URLs without a fragment (got "${uri}")`,
      )
  }
  // The same parser the app uses, so the file and its secret variables mean the same thing.
  // Its own secrets are irrelevant here: fixed throwaway values keep it from generating any.
  const config = loadConfig({
    ...env,
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    LINK_SIGNING_SECRET: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: `sandbox:${randomBytes(32).toString('base64')}`,
  })
  const served = config.apps.filter(
    (a: CartaAppConfig) => !a.sandbox && pointsAt(a.authBaseUrl, port) && pointsAt(a.apiBaseUrl, port),
  )
  if (served.length === 0) {
    throw new ConfigError(
      'CARTA_APPS_FILE',
      `declares no app whose authBaseUrl and apiBaseUrl are loopback URLs on port ${port} (${config.appsFile})`,
    )
  }
  const clients = new Map<string, SandboxClient>()
  for (const a of served) {
    if (!clients.has(a.clientId))
      clients.set(a.clientId, {
        clientId: a.clientId,
        clientSecret: a.clientSecret,
        name: a.name,
        scopes: a.scopes,
        redirectUris,
      })
  }
  const prefixes = [
    ...new Set(
      served
        .flatMap((a) => [new URL(a.authBaseUrl).pathname, new URL(a.apiBaseUrl).pathname])
        .map((p) => p.replace(/\/+$/, '')),
    ),
  ]
  return {
    host: env.SANDBOX_HOST?.trim() || '127.0.0.1',
    port,
    clients: [...clients.values()],
    prefixes,
    rateLimit: config.sandboxRateLimit,
    logLevel: config.logLevel,
  }
}

async function main(): Promise<void> {
  let settings: StandaloneSettings
  try {
    settings = standaloneSettings(process.env)
  } catch (err) {
    console.error(`Sandbox cannot start: ${(err as Error).message}`)
    process.exit(1)
  }
  const sandbox = await buildSandbox({
    clients: settings.clients,
    prefixes: settings.prefixes,
    rateLimit: settings.rateLimit,
    logLevel: settings.logLevel,
  })
  const shutdown = async () => {
    await sandbox.close()
    process.exit(0)
  }
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())
  await sandbox.listen({ host: settings.host, port: settings.port })
  sandbox.log.info(
    { clients: settings.clients.map((c) => c.clientId), prefixes: settings.prefixes, rateLimit: settings.rateLimit },
    'Sandbox Carta is on (demo only: it signs anyone in)',
  )
}

// Run only when executed directly (the tests import standaloneSettings).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main()
