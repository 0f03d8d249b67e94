// An operator identity provider nobody here wrote: `oidc-provider` as a company's OpenID Connect
// provider (discovery, code + PKCE, client_secret_basic, e-mail and groups claims in the ID
// token). Login and consent are answered without a page for `account`. `idToken` makes the
// provider misbehave on purpose: an ID token for another audience, or one already expired.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
// @ts-expect-error -- oidc-provider ships no type declarations
import Provider from 'oidc-provider'

export interface OperatorIdp {
  url: string
  clientId: string
  clientSecret: string
  /** Who signs in next, with the claims the ID token carries. */
  account: { sub: string; email?: string; email_verified?: boolean; groups?: string[]; ledger_role?: string[] }
  idToken: 'valid' | 'wrong-audience' | 'expired'
  /** Where the claims go: the ID token (default), or only UserInfo (oidc-provider's default). */
  claimsIn: 'id-token' | 'userinfo'
  /** OPERATOR_OIDC_* for startTestApp. */
  env(extra?: Record<string, string>): Record<string, string>
  /** Creates the provider once the app's redirect URI is known. */
  configure(redirectUri: string): void
}

export async function startOperatorIdp(t: { teardown(fn: () => unknown): void }): Promise<OperatorIdp> {
  // biome-ignore lint/suspicious/noExplicitAny: oidc-provider ships no type declarations
  let provider: any = null
  const idp: OperatorIdp = {
    url: '',
    clientId: 'scope-ledger-ops',
    clientSecret: 'idp-secret-0123456789-abcdefghij',
    account: { sub: 'emp-1001', email: 'ada@example.com', email_verified: true, groups: ['ledger'] },
    idToken: 'valid',
    claimsIn: 'id-token',
    env: () => ({}),
    configure: () => {},
  }

  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res)
    if (details.prompt.name === 'login')
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: idp.account.sub } },
        { mergeWithLastSubmission: false },
      )
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id })
    grant.addOIDCScope(String(details.params.scope ?? ''))
    const grantId = await grant.save()
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
  }

  const server = createServer((req, res) => {
    if (!provider) return void res.writeHead(503).end()
    if ((req.url ?? '').startsWith('/interaction/'))
      return void interaction(req, res).catch((err) => res.writeHead(500).end(String(err)))
    return provider.callback()(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  idp.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  idp.env = (extra = {}) => ({
    OPERATOR_OIDC_ISSUER: idp.url,
    OPERATOR_OIDC_CLIENT_ID: idp.clientId,
    OPERATOR_OIDC_CLIENT_SECRET: idp.clientSecret,
    OPERATOR_OIDC_ALLOWED_DOMAINS: 'example.com',
    OPERATOR_OIDC_SCOPES: 'openid email groups',
    ...extra,
  })

  idp.configure = (redirectUri: string) => {
    provider = new Provider(idp.url, {
      clients: [
        {
          client_id: idp.clientId,
          client_secret: idp.clientSecret,
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      scopes: ['openid', 'email', 'profile', 'groups'],
      claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups', 'ledger_role'] },
      // The claims go in the ID token (as many company providers do for e-mail and groups), or
      // only to UserInfo (OpenID Connect Core §5.4) when the test asks for it.
      conformIdTokenClaims: idp.claimsIn === 'userinfo',
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx: unknown, i: { uid: string }) => `/interaction/${i.uid}` },
      pkce: { required: () => true },
      findAccount: async (_ctx: unknown, sub: string) => ({
        accountId: sub,
        claims: async () => ({ ...idp.account, sub }),
      }),
      cookies: { keys: ['idp-test-cookie-key-0123456789'] },
    })
    // Misbehaviour on demand, at the one place ID tokens are signed.
    const issue = provider.IdToken.prototype.issue
    provider.IdToken.prototype.issue = async function (
      this: { client: object },
      options: { use?: string; expiresAt?: number },
    ) {
      if (idp.idToken === 'expired')
        return issue.call(this, { ...options, expiresAt: Math.floor(Date.now() / 1000) - 600 })
      if (idp.idToken === 'wrong-audience') {
        const client = this.client
        this.client = Object.create(client, { clientId: { value: 'some-other-client' } })
        try {
          return await issue.call(this, options)
        } finally {
          this.client = client
        }
      }
      return issue.call(this, options)
    }
  }
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return idp
}
