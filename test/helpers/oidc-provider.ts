// A third-party authorization server nobody here wrote: the `oidc-provider` package, configured
// like Carta (its paths, client_secret_basic, custom scopes, opaque access tokens, rotating
// refresh tokens). Login and consent are answered by a tiny interaction handler that signs in a
// fixed account and grants the programmed scopes. It also serves /v1alpha1/user and
// /v1alpha1/issuers, checking the bearer token against the provider's own token store.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// @ts-ignore -- oidc-provider ships no type declarations
import Provider from 'oidc-provider'

export interface OidcCarta {
  url: string
  clientId: string
  clientSecret: string
  /** Scopes the next consent grants (default: everything requested). */
  grantScopes: string[] | null
  /** Account the interaction handler signs in. */
  accountId: string
  /** Apps-file environment for startTestApp. */
  env(): Record<string, string>
  /** Creates the provider once the app's redirect URI is known. */
  configure(redirectUri: string): void
  /** Looks a token up in the provider's own store (undefined when unknown/revoked/expired). */
  findAccessToken(value: string): Promise<{ accountId: string; scope: string } | undefined>
  close(): Promise<void>
}

export async function startOidcCarta(t: { teardown(fn: () => unknown): void }, scopes: string[]): Promise<OidcCarta> {
  let provider: any = null
  const oidc: OidcCarta = {
    url: '',
    clientId: 'oidc-client',
    clientSecret: 'oidc-secret-0123456789-abcdefghij',
    grantScopes: null,
    accountId: 'op-user-42',
    env: () => ({}),
    configure: () => {},
    findAccessToken: async () => undefined,
    close: async () => {},
  }

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
  }

  /** Bearer-protected API like Carta's, backed by the provider's AccessToken model. */
  const api = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const value = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    const token = value ? await provider.AccessToken.find(value) : undefined
    if (!token)
      return json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' })
    const held = String(token.scope ?? '').split(' ')
    const needed = path === '/v1alpha1/user' ? 'read_user_info' : 'read_issuer_info'
    if (!held.includes(needed))
      return json(
        res,
        403,
        { error: 'insufficient_scope' },
        { 'www-authenticate': `Bearer error="insufficient_scope", scope="${needed}"` },
      )
    if (path === '/v1alpha1/user')
      return json(res, 200, {
        user: { user_id: token.accountId, email: 'grace@example.org', first_name: 'Grace', last_name: 'Hopper' },
      })
    return json(res, 200, { results: [{ id: 'iss-op-1', legal_name: 'Compiler Works Ltd.' }] })
  }

  /** Answers login and consent without a page: sign in the account, grant the programmed scopes. */
  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res)
    if (details.prompt.name === 'login') {
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: oidc.accountId } },
        { mergeWithLastSubmission: false },
      )
    }
    const requested = String(details.params.scope ?? '')
      .split(' ')
      .filter(Boolean)
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id })
    const allowed = (oidc.grantScopes ?? requested).filter((s) => requested.includes(s))
    grant.addOIDCScope(allowed.join(' '))
    // Scopes the user unticked are rejected explicitly, or the provider asks for consent again.
    const refused = requested.filter((s) => !allowed.includes(s))
    if (refused.length) grant.rejectOIDCScope(refused.join(' '))
    const grantId = await grant.save()
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const fail = (err: unknown) => json(res, 500, { error: 'server_error', detail: String(err) })
    if (!provider) return json(res, 503, { error: 'not_configured' })
    if (path.startsWith('/v1alpha1/')) return void api(req, res, path).catch(fail)
    if (path.startsWith('/interaction/')) return void interaction(req, res).catch(fail)
    return provider.callback()(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  oidc.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`

  const dir = mkdtempSync(join(tmpdir(), 'oidc-carta-'))
  const appsFile = join(dir, 'apps.json')
  writeFileSync(
    appsFile,
    JSON.stringify({
      apps: [
        {
          key: 'oidc-prod',
          name: 'oidc-provider as Carta',
          environment: 'production',
          clientId: oidc.clientId,
          clientSecretEnv: 'OIDC_CARTA_CLIENT_SECRET',
          authBaseUrl: oidc.url,
          apiBaseUrl: oidc.url,
          scopes,
          current: true,
        },
      ],
    }),
  )
  oidc.env = () => ({ CARTA_APPS_FILE: appsFile, OIDC_CARTA_CLIENT_SECRET: oidc.clientSecret })

  oidc.configure = (redirectUri: string) => {
    provider = new Provider(oidc.url, {
      clients: [
        {
          client_id: oidc.clientId,
          client_secret: oidc.clientSecret,
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      // Carta's paths (DESIGN §1), not oidc-provider's defaults.
      routes: { authorization: '/o/authorize/', token: '/o/access_token/', revocation: '/o/revoke_token/' },
      scopes,
      claims: { openid: ['sub'] },
      features: { devInteractions: { enabled: false }, revocation: { enabled: true } },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      pkce: { required: () => true },
      // Refresh tokens without offline_access (Carta issues them to every code grant), rotating.
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
        client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: true,
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
      cookies: { keys: ['oidc-test-cookie-key-0123456789'] },
      ttl: {
        AccessToken: 3600,
        AuthorizationCode: 60,
        RefreshToken: 14 * 24 * 3600,
        Grant: 14 * 24 * 3600,
        Interaction: 600,
        Session: 3600,
      },
    })
  }
  oidc.findAccessToken = async (value: string) => {
    const token = await provider.AccessToken.find(value)
    return token ? { accountId: token.accountId, scope: token.scope } : undefined
  }
  let closed = false
  oidc.close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(oidc.close)
  return oidc
}
