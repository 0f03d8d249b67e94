// The sandbox Carta's HTTP surface: login and consent pages, token and revocation endpoints,
// the v1alpha1 API, and the JSON controls tests and the demo use. Mounted inside the app under
// /sandbox (routes.ts) or run on its own port (build.ts). All state is in the SandboxStore.
import { createHmac, randomInt } from 'node:crypto'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { localRedirect } from '../http/redirect.js'
import { describeScope, formatScopes, parseScopes } from '../scopes.js'
import { eta } from '../views.js'
import { type DemoIssuer, type DemoUser, demoFirms, demoUsers, findDemoIssuer, findDemoUser } from './data.js'
import {
  AuthorizeQuery,
  ClockControl,
  ClockForm,
  ConsentForm,
  FailControl,
  MintGrantsControl,
  MintGrantsQuery,
  NextQuery,
  RateLimitControl,
  ResetControl,
  RevokeForm,
  ShrinkControl,
  WidenControl,
  SignInForm,
  SignOutForm,
  TokenForm,
} from './schemas.js'
import {
  ACCESS_TOKEN_TTL_S,
  type FailEndpoint,
  OAuthError,
  type SandboxStore,
  safeEqual,
  single,
  type TokenResponse,
} from './store.js'

export interface SandboxPluginOptions {
  store: SandboxStore
  /** Signs the sandbox's own sign-in cookie. */
  cookieSecret: string
  cookieSecure: boolean
}

export const USER_COOKIE = 'sandbox_user'
const REALM = 'Carta sandbox'

type Params = Record<string, unknown>

export async function sandboxPlugin(app: FastifyInstance, options: SandboxPluginOptions): Promise<void> {
  const { store } = options
  // The prefix this plugin is mounted under ('' standalone, '/sandbox' inside the app).
  const base = app.prefix.replace(/\/+$/, '')
  const cookiePath = base || '/'

  // A request its schema refuses gets an OAuth-style JSON error (RFC 6749 §5.2), as every other
  // refusal of the sandbox; anything else goes to the host app's (or build.ts's) error handler.
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (!error.validation) throw error
    request.log.warn({ reason: error.message }, 'sandbox: request refused by its schema')
    return reply.code(400).send({ error: 'invalid_request', error_description: error.message })
  })

  // --- sign-in cookie: the sandbox's own, scoped to its path, never the app's session ---------

  const sign = (userId: string) =>
    createHmac('sha256', options.cookieSecret).update(`sandbox_user:${userId}`).digest('base64url')
  const signedInUser = (request: FastifyRequest): DemoUser | null => {
    const raw = (request.cookies as Record<string, string | undefined> | undefined)?.[USER_COOKIE]
    if (!raw) return null
    const dot = raw.lastIndexOf('.')
    const userId = raw.slice(0, dot)
    if (dot < 1 || !safeEqual(raw.slice(dot + 1), sign(userId))) return null
    return findDemoUser(userId) ?? null
  }
  const cookieOptions = { path: cookiePath, httpOnly: true, sameSite: 'lax' as const, secure: options.cookieSecure }

  // Only paths inside the sandbox may be a post-sign-in destination (no open redirect), and only
  // ones a Location header carries safely (src/http/redirect.ts).
  const safeNext = (value: string | undefined): string =>
    localRedirect(value, { within: `${base}/`, fallback: `${base}/` })

  const render = async (
    reply: FastifyReply,
    view: string,
    data: Record<string, unknown>,
    status = 200,
  ): Promise<FastifyReply> => {
    const html = await eta.renderAsync(`sandbox/${view}`, { base, user: null, ...data })
    // Pages carry per-request ids (consent) and who is signed in: never cache them.
    return reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html)
  }
  const errorPage = (request: FastifyRequest, reply: FastifyReply, status: number, title: string, message: string) => {
    request.log.warn({ status, reason: message }, `sandbox: ${title}`)
    return render(reply, 'error', { title, message, statusCode: status, user: signedInUser(request) }, status)
  }

  /** RFC 6749 §4.1.2.1: errors after the redirect URI is verified go back to the client. */
  const redirectWith = (reply: FastifyReply, redirectUri: string, params: Record<string, string | null>) => {
    const target = new URL(redirectUri)
    for (const [k, v] of Object.entries(params)) if (v !== null) target.searchParams.append(k, v)
    return reply.code(302).header('cache-control', 'no-store').redirect(target.toString())
  }

  // --- pages ----------------------------------------------------------------------------------

  app.get('/', async (request, reply) => {
    const stats = store.stats()
    return render(reply, 'home', {
      title: 'Sandbox',
      user: signedInUser(request),
      stats,
      liveTokens: stats.tokens.filter((t) => t.kind === 'access' && t.status === 'live').length,
      nowText: `${new Date(stats.now).toISOString().replace('T', ' ').slice(0, 19)} UTC`,
      offsetText: formatDuration(stats.clockOffsetSeconds),
      formToken: store.formToken,
      clients: [...store.clients.values()].map((c) => ({
        name: c.name,
        clientId: c.clientId,
        scopes: c.scopes,
        redirectUris: c.redirectUris,
      })),
      users: demoUsers.map((u) => ({ ...u, issuers: u.issuerIds.map((id) => findDemoIssuer(id)!) })),
    })
  })

  // The home page's button (a plain form, so it works without JavaScript).
  app.post('/clock', { schema: { body: ClockForm } }, async (request, reply) => {
    const body = (request.body ?? {}) as Params
    if (!safeEqual(single(body, 'form_token') ?? '', store.formToken)) {
      return errorPage(request, reply, 403, 'This form has expired', 'Reload the sandbox home page and try again.')
    }
    store.offsetMs += 3600 * 1000
    request.log.info({ offsetSeconds: store.offsetMs / 1000 }, 'sandbox: clock moved forward')
    return reply.code(303).redirect(`${base}/`)
  })

  app.get<{ Querystring: Params }>('/login', { schema: { querystring: NextQuery } }, async (request, reply) => {
    return signInPage(reply, safeNext(single(request.query, 'next')), null)
  })

  const signInPage = (reply: FastifyReply, next: string, clientName: string | null) =>
    render(reply, 'sign-in', {
      title: 'Sign in',
      next,
      clientName,
      users: demoUsers.map((u) => ({ ...u, issuers: u.issuerIds.map((id) => findDemoIssuer(id)!.dbaName) })),
    })

  app.post('/login', { schema: { body: SignInForm } }, async (request, reply) => {
    const body = (request.body ?? {}) as Params
    const user = findDemoUser(single(body, 'user_id') ?? '')
    if (!user)
      return errorPage(request, reply, 400, 'Unknown demo user', 'Pick one of the demo users on the sign-in page.')
    store.counters.signIns++
    reply.setCookie(USER_COOKIE, `${user.id}.${sign(user.id)}`, cookieOptions)
    return reply.code(303).redirect(safeNext(single(body, 'next')))
  })

  app.post('/logout', { schema: { body: SignOutForm } }, async (request, reply) => {
    const body = (request.body ?? {}) as Params
    reply.clearCookie(USER_COOKIE, cookieOptions)
    return reply.code(303).redirect(`${base}/login?next=${encodeURIComponent(safeNext(single(body, 'next')))}`)
  })

  // --- authorization endpoint (RFC 6749 §4.1.1) --------------------------------------------

  app.get<{ Querystring: Params }>(
    '/o/authorize/',
    { schema: { querystring: AuthorizeQuery } },
    async (request, reply) => {
      store.counters.authorizeRequests++
      const query = request.query
      let verified: ReturnType<SandboxStore['verifyClientAndRedirect']>
      try {
        verified = store.verifyClientAndRedirect(query)
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err
        // Never redirect to an unverified URI: show the error here instead (§4.1.2.1).
        const title = err.error === 'invalid_client' ? 'Unknown application' : 'Invalid authorization request'
        return errorPage(request, reply, 400, title, err.description)
      }
      const { client, redirectUri } = verified
      const state = Array.isArray(query.state) ? null : (single(query, 'state') ?? null)
      let params: ReturnType<SandboxStore['verifyAuthorizationParameters']>
      try {
        params = store.verifyAuthorizationParameters(client, query)
      } catch (err) {
        if (!(err instanceof OAuthError)) throw err
        request.log.warn({ error: err.error, clientId: client.clientId }, 'sandbox: authorization request refused')
        return redirectWith(reply, redirectUri, { error: err.error, error_description: err.description, state })
      }
      const user = signedInUser(request)
      if (!user) return signInPage(reply, safeNext(request.url), client.name)
      const pending = store.createPending({
        clientId: client.clientId,
        userId: user.id,
        redirectUri,
        state,
        scopes: params.scopes,
        codeChallenge: params.codeChallenge,
      })
      return render(reply, 'consent', {
        title: `Authorize ${client.name}`,
        user,
        switchNext: request.url,
        clientName: client.name,
        requestId: pending.id,
        redirectOrigin: new URL(redirectUri).origin,
        scopes: params.scopes.map((name) => ({ name, description: describeScope(name) })),
      })
    },
  )

  // The consent decision. The single-use request id ties it to the page shown to this user, so a
  // cross-site post cannot forge consent (it plays the role of a CSRF token).
  app.post('/o/authorize/', { schema: { body: ConsentForm } }, async (request, reply) => {
    const body = (request.body ?? {}) as Params
    const user = signedInUser(request)
    if (!user)
      return errorPage(
        request,
        reply,
        400,
        'You are not signed in',
        'Sign in to the sandbox again by starting over from the application.',
      )
    const pending = store.takePending(single(body, 'request_id') ?? '', user.id)
    if (!pending) {
      return errorPage(
        request,
        reply,
        400,
        'This consent page has expired',
        'It was already answered, left open too long, or shown to another user. Start again from the application.',
      )
    }
    const chosen = parseScopes(
      (Array.isArray(body.scope) ? body.scope : [body.scope])
        .filter((s): s is string => typeof s === 'string')
        .join(' '),
    )
    const unknown = chosen.filter((s) => !pending.scopes.includes(s))
    if (unknown.length > 0)
      return errorPage(
        request,
        reply,
        400,
        'Invalid consent',
        `These permissions were not requested: ${unknown.join(' ')}`,
      )
    // Granting nothing is a refusal: Carta does not issue a token without scopes.
    if (single(body, 'decision') !== 'allow' || chosen.length === 0) {
      store.counters.denials++
      request.log.info({ clientId: pending.clientId, userId: user.id }, 'sandbox: access denied by user')
      return redirectWith(reply, pending.redirectUri, {
        error: 'access_denied',
        error_description: 'The user denied the request.',
        state: pending.state,
      })
    }
    store.counters.consents++
    const code = store.issueCode(pending, chosen)
    request.log.info(
      { clientId: pending.clientId, userId: user.id, scopes: formatScopes(chosen) },
      'sandbox: access granted',
    )
    return redirectWith(reply, pending.redirectUri, { code, state: pending.state })
  })

  // --- token endpoint (RFC 6749 §3.2, §4.1.3, §6) ------------------------------------------

  const oauthJson = (reply: FastifyReply, status: number, body: unknown) =>
    reply
      .code(status)
      .header('cache-control', 'no-store')
      .header('pragma', 'no-cache')
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(body))

  /** Client authentication by HTTP Basic only (client_secret_basic, as Carta), else 401. */
  const authenticate = (request: FastifyRequest, reply: FastifyReply) => {
    const client = store.authenticateClient(request.headers.authorization)
    if (client) return client
    const body = (request.body ?? {}) as Params
    const description = request.headers.authorization
      ? 'Client authentication failed.'
      : body.client_secret !== undefined
        ? 'Client credentials must be sent with HTTP Basic (client_secret_basic), not in the body.'
        : 'Client authentication is required (HTTP Basic).'
    request.log.warn({ reason: description }, 'sandbox: client authentication failed')
    // §5.2: 401 with a WWW-Authenticate matching the scheme the client should use.
    // The error is repeated in the challenge (as oauthlib-based servers do) so clients that read
    // only the header still see it.
    reply.header('www-authenticate', `Basic realm="${REALM}", charset="UTF-8", error="invalid_client"`)
    void oauthJson(reply, 401, { error: 'invalid_client', error_description: description })
    return null
  }

  const injectedFailure = (request: FastifyRequest, reply: FastifyReply, endpoint: FailEndpoint): boolean => {
    const status = store.takeFailure(endpoint)?.status ?? null
    if (status === null) return false
    request.log.warn({ endpoint, status }, 'sandbox: injected failure')
    void oauthJson(reply, status, {
      error: status >= 500 ? 'temporarily_unavailable' : 'injected_failure',
      error_description: 'Failure injected by the sandbox fail control.',
    })
    return true
  }

  const formBody = (request: FastifyRequest): Params | null =>
    /^application\/x-www-form-urlencoded\b/i.test(request.headers['content-type'] ?? '') &&
    request.body &&
    typeof request.body === 'object'
      ? (request.body as Params)
      : null

  app.post('/o/access_token/', { schema: { body: TokenForm } }, async (request, reply) => {
    store.counters.tokenRequests++
    if (injectedFailure(request, reply, 'token')) return reply
    const form = formBody(request)
    if (!form)
      return oauthJson(reply, 400, {
        error: 'invalid_request',
        error_description: 'The body must be application/x-www-form-urlencoded.',
      })
    const client = authenticate(request, reply)
    if (!client) {
      store.counters.tokenErrors++
      return reply
    }
    const grantType = single(form, 'grant_type') ?? ''
    try {
      let response: TokenResponse
      if (grantType === 'authorization_code') response = store.exchangeCode(client, form)
      else if (grantType === 'refresh_token') response = store.refresh(client, form)
      else if (!grantType) throw new OAuthError('invalid_request', 'grant_type is required.')
      else throw new OAuthError('unsupported_grant_type', `grant_type "${grantType}" is not supported.`)
      store.countGrant(grantType, true)
      if (grantType === 'authorization_code') store.counters.codeExchanges++
      else store.counters.refreshes++
      request.log.info(
        { clientId: client.clientId, grantType, scope: response.scope ?? '(as requested)' },
        'sandbox: tokens issued',
      )
      return oauthJson(reply, 200, response)
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err
      store.counters.tokenErrors++
      if (grantType === 'authorization_code' || grantType === 'refresh_token') store.countGrant(grantType, false)
      request.log.warn(
        { clientId: client.clientId, grantType, error: err.error, reason: err.description },
        'sandbox: token request refused',
      )
      return oauthJson(reply, err.status, { error: err.error, error_description: err.description })
    }
  })

  // --- revocation endpoint (RFC 7009) --------------------------------------------------------

  app.post('/o/revoke_token/', { schema: { body: RevokeForm } }, async (request, reply) => {
    if (injectedFailure(request, reply, 'revoke')) return reply
    const form = formBody(request)
    if (!form)
      return oauthJson(reply, 400, {
        error: 'invalid_request',
        error_description: 'The body must be application/x-www-form-urlencoded.',
      })
    const client = authenticate(request, reply)
    if (!client) return reply
    const token = single(form, 'token')
    if (!token) return oauthJson(reply, 400, { error: 'invalid_request', error_description: 'token is required.' })
    // §2.1: token_type_hint is only a hint; every kind of token is looked up regardless.
    const revoked = store.revoke(client, token)
    store.counters.revocations++
    request.log.info({ clientId: client.clientId, matched: revoked }, 'sandbox: revocation request')
    // §2.2: 200 whether or not the token was known, valid or this client's.
    return reply.code(200).header('cache-control', 'no-store').send()
  })

  // --- API: Carta's v1alpha1 endpoints, errors and rate limit ------------------------------------
  // Errors in Carta's documented format (https://docs.carta.com/carta/docs/error-codes):
  // {"code": <google.rpc.Code>, "message", "details": [{"@type": …ErrorInfo, "reason", "metadata"}]}.
  // RFC 6750 §3 WWW-Authenticate challenges are sent as well (Carta does not document them).

  const cartaError = (reply: FastifyReply, status: number, code: number, message: string, reason?: string) =>
    reply
      .code(status)
      .header('cache-control', 'no-store')
      .type('application/json; charset=utf-8')
      .send(
        JSON.stringify(
          reason ? { code, message, details: [{ '@type': ERROR_INFO_TYPE, reason, metadata: {} }] } : { code, message },
        ),
      )

  const refuse = (
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    code: number,
    message: string,
    reason?: string,
  ) => {
    store.counters.apiErrors++
    request.log.warn({ status, reason: reason ?? message }, 'sandbox: API request refused')
    return cartaError(reply, status, code, message, reason)
  }

  const tooManyRequests = (reply: FastifyReply, retryAfterSeconds: number) =>
    reply
      .code(429)
      .header('retry-after', String(retryAfterSeconds))
      .header('cache-control', 'no-store')
      .type('application/json; charset=utf-8')
      .send(JSON.stringify({ message: 'API rate limit exceeded' }))

  const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i

  /** The token's user when the request may proceed with `scope`; otherwise answers and returns null. */
  const requireScope = (request: FastifyRequest, reply: FastifyReply, scope: string): DemoUser | null => {
    store.counters.apiCalls++
    const m = BEARER.exec(request.headers.authorization ?? '')
    // Counted per client id (a token's client, even expired), else per address.
    const clientId = m ? store.tokenClientId(m[1]!) : null
    const limit = store.rateLimiter.take(clientId ? `client:${clientId}` : `ip:${request.ip}`)
    for (const [name, value] of Object.entries(limit.headers)) reply.header(name, value)
    if (!limit.allowed) {
      store.counters.rateLimited++
      request.log.warn({ clientId, retryAfterSeconds: limit.retryAfterSeconds }, 'sandbox: API rate limit exceeded')
      void tooManyRequests(reply, limit.retryAfterSeconds ?? 1)
      return null
    }
    const failure = store.takeFailure('api')
    if (failure) {
      request.log.warn({ endpoint: 'api', status: failure.status }, 'sandbox: injected failure')
      if (failure.status === 429) {
        const wait = failure.retryAfterSeconds ?? 1
        reply.header('ratelimit-remaining', '0').header('ratelimit-reset', String(wait))
        void tooManyRequests(reply, wait)
      } else {
        const [code, message] = RPC_CODES[failure.status] ?? [2, 'Unknown error']
        void cartaError(reply, failure.status, code, message, failure.reason)
      }
      return null
    }
    const token = m ? store.liveAccessToken(m[1]!) : null
    if (!request.headers.authorization) {
      // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
      reply.header('www-authenticate', `Bearer realm="${REALM}"`)
      void refuse(request, reply, 401, 16, 'Unauthorized', 'MISSING_OR_INVALID_ACCESS_TOKEN')
    } else if (!m) {
      reply.header('www-authenticate', `Bearer realm="${REALM}", error="invalid_request"`)
      void refuse(request, reply, 401, 16, 'Unauthorized', 'MISSING_OR_INVALID_ACCESS_TOKEN')
    } else if (!token) {
      reply.header(
        'www-authenticate',
        `Bearer realm="${REALM}", error="invalid_token", error_description="The access token is unknown, expired or revoked"`,
      )
      void refuse(request, reply, 401, 16, 'Unauthorized', 'MISSING_OR_INVALID_ACCESS_TOKEN')
    } else if (!token.scopes.includes(scope)) {
      reply.header('www-authenticate', `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"`)
      void refuse(request, reply, 403, 7, 'Access to resource denied', 'INSUFFICIENT_SCOPE')
    } else {
      const user = findDemoUser(token.userId)
      if (user) return user
      void refuse(request, reply, 401, 16, 'Unauthorized', 'MISSING_OR_INVALID_ACCESS_TOKEN')
    }
    return null
  }

  /** An issuer the user granted: 404 when there is no such issuer, 403 when it is not the user's. */
  const visibleIssuer = (request: FastifyRequest, reply: FastifyReply, user: DemoUser, issuerId: string) => {
    const issuer = findDemoIssuer(issuerId)
    if (!issuer) {
      void refuse(request, reply, 404, 5, 'Resource not found')
      return null
    }
    if (!user.issuerIds.includes(issuer.id)) {
      void refuse(request, reply, 403, 7, 'Access to resource denied', 'ACCESS_TO_RESOURCE_RESTRICTED')
      return null
    }
    return issuer
  }

  /**
   * Carta's list paging: pageSize (unset or 0 → 25, above 50 → 50) and an opaque pageToken
   * (https://docs.carta.com/api-platform/reference/issuers). Null after answering 400.
   */
  const paginate = <T>(
    request: FastifyRequest<{ Querystring: Params }>,
    reply: FastifyReply,
    list: T[],
    listKey: string,
  ): { items: T[]; nextPageToken?: string } | null => {
    const sizeText = single(request.query, 'pageSize') ?? ''
    const tokenText = single(request.query, 'pageToken') ?? ''
    if (Array.isArray(request.query.pageSize) || Array.isArray(request.query.pageToken)) {
      void refuse(request, reply, 400, 3, 'pageSize and pageToken may be given once')
      return null
    }
    if (sizeText !== '' && !/^-?\d{1,9}$/.test(sizeText.trim())) {
      void refuse(request, reply, 400, 3, 'pageSize must be an integer')
      return null
    }
    const asked = sizeText === '' ? 0 : Number(sizeText)
    if (asked < 0) {
      void refuse(request, reply, 400, 3, 'pageSize must not be negative')
      return null
    }
    const size = asked === 0 ? 25 : Math.min(asked, 50)
    let offset = 0
    if (tokenText) {
      const decoded = decodePageToken(tokenText)
      if (!decoded || decoded.list !== listKey || decoded.offset > list.length) {
        void refuse(request, reply, 400, 3, 'Invalid page token')
        return null
      }
      offset = decoded.offset
    }
    const items = list.slice(offset, offset + size)
    const next = offset + size
    // proto3 JSON leaves an empty nextPageToken out.
    return next < list.length ? { items, nextPageToken: encodePageToken(listKey, next) } : { items }
  }

  const issuerJson = (i: DemoIssuer) => ({
    id: i.id,
    legalName: i.legalName,
    doingBusinessAsName: i.dbaName,
    website: i.website,
  })

  app.get('/v1alpha1/user', async (request, reply) => {
    const user = requireScope(request, reply, 'read_user_info')
    if (!user) return reply
    return { id: user.id, email: user.email, firstName: user.firstName, lastName: user.lastName }
  })

  app.get<{ Querystring: Params }>('/v1alpha1/issuers', async (request, reply) => {
    const user = requireScope(request, reply, 'read_issuer_info')
    if (!user) return reply
    const page = paginate(
      request,
      reply,
      user.issuerIds.map((id) => findDemoIssuer(id)!),
      `issuers:${user.id}`,
    )
    if (!page) return reply
    return { issuers: page.items.map(issuerJson), ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}) }
  })

  app.get<{ Params: { issuerId: string } }>('/v1alpha1/issuers/:issuerId', async (request, reply) => {
    const user = requireScope(request, reply, 'read_issuer_info')
    if (!user) return reply
    const issuer = visibleIssuer(request, reply, user, request.params.issuerId)
    if (!issuer) return reply
    return { issuer: issuerJson(issuer) }
  })

  app.get<{ Params: { issuerId: string } }>(
    '/v1alpha1/issuers/:issuerId/capitalizationTable',
    async (request, reply) => {
      const user = requireScope(request, reply, 'read_issuer_capitalizationtablesummary')
      if (!user) return reply
      const issuer = visibleIssuer(request, reply, user, request.params.issuerId)
      if (!issuer) return reply
      return { capitalizationTable: capitalizationTable(issuer, new Date(store.now()).toISOString().slice(0, 10)) }
    },
  )

  app.get<{ Params: { issuerId: string } }>('/v1alpha1/issuers/:issuerId/shareClasses', async (request, reply) => {
    const user = requireScope(request, reply, 'read_issuer_shareclasses')
    if (!user) return reply
    const issuer = visibleIssuer(request, reply, user, request.params.issuerId)
    if (!issuer) return reply
    return {
      shareClasses: issuer.shareClasses.map((c) => ({
        id: c.id,
        issuerId: issuer.id,
        name: c.name,
        prefix: c.prefix,
        type: c.type,
        authorizedShareCount: decimal(c.authorized),
        seniority: c.seniority,
      })),
    }
  })

  app.get<{ Params: { issuerId: string }; Querystring: Params }>(
    '/v1alpha1/issuers/:issuerId/stakeholders',
    async (request, reply) => {
      const user = requireScope(request, reply, 'read_issuer_stakeholders')
      if (!user) return reply
      const issuer = visibleIssuer(request, reply, user, request.params.issuerId)
      if (!issuer) return reply
      const holders = demoUsers.filter((u) => u.issuerIds.includes(issuer.id))
      const page = paginate(request, reply, holders, `stakeholders:${issuer.id}`)
      if (!page) return reply
      return {
        stakeholders: page.items.map((u) => ({
          id: `sh_${issuer.id}_${u.id}`,
          issuerId: issuer.id,
          fullName: `${u.firstName} ${u.lastName}`,
          email: u.email,
        })),
        ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
      }
    },
  )

  app.get('/v1alpha1/corporations', async (request, reply) => {
    const user = requireScope(request, reply, 'read_corporation_info')
    if (!user) return reply
    return {
      corporations: user.issuerIds.map((id) => {
        const i = findDemoIssuer(id)!
        return {
          id: `corp_${i.id.replace(/^iss_/, '')}`,
          legalName: i.legalName,
          doingBusinessAsName: i.dbaName,
          website: i.website,
        }
      }),
    }
  })

  app.get<{ Querystring: Params }>('/v1alpha1/investors/firms', async (request, reply) => {
    const user = requireScope(request, reply, 'read_investor_firms')
    if (!user) return reply
    const page = paginate(request, reply, demoFirms[user.id] ?? [], `firms:${user.id}`)
    if (!page) return reply
    return { firms: page.items, ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}) }
  })

  // --- controls (JSON only; the sandbox never runs in production) ------------------------------

  const jsonBody = (request: FastifyRequest, reply: FastifyReply): Params | null => {
    if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
      void reply.code(415).send({
        error: 'unsupported_media_type',
        error_description: 'Controls take a JSON body (content-type: application/json).',
      })
      return null
    }
    const body = request.body
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      void reply.code(400).send({ error: 'invalid_request', error_description: 'The body must be a JSON object.' })
      return null
    }
    return body as Params
  }
  // Before the schema: a body that is not JSON is refused for its type, whatever it holds.
  const jsonOnly = async (request: FastifyRequest, reply: FastifyReply) => {
    if (/^application\/json\b/i.test(request.headers['content-type'] ?? '')) return
    return reply.code(415).send({
      error: 'unsupported_media_type',
      error_description: 'Controls take a JSON body (content-type: application/json).',
    })
  }
  const badControl = (reply: FastifyReply, description: string) =>
    reply.code(400).send({ error: 'invalid_request', error_description: description })

  app.get('/_control/stats', async (_request, reply) => reply.header('cache-control', 'no-store').send(store.stats()))

  app.post('/_control/clock', { preValidation: jsonOnly, schema: { body: ClockControl } }, async (request, reply) => {
    const body = jsonBody(request, reply)
    if (!body) return reply
    const advance = body.advanceSeconds
    if (typeof advance !== 'number' || !Number.isFinite(advance))
      return badControl(reply, '"advanceSeconds" must be a number.')
    store.offsetMs += Math.round(advance * 1000)
    request.log.info({ offsetSeconds: store.offsetMs / 1000 }, 'sandbox: clock moved')
    return { offsetSeconds: store.offsetMs / 1000, now: store.now() }
  })

  app.post('/_control/fail', { preValidation: jsonOnly, schema: { body: FailControl } }, async (request, reply) => {
    const body = jsonBody(request, reply)
    if (!body) return reply
    const endpoint = body.endpoint
    if (endpoint !== 'token' && endpoint !== 'revoke' && endpoint !== 'api')
      return badControl(reply, '"endpoint" must be "token", "revoke" or "api".')
    const status = body.status ?? 503
    const times = body.times ?? 1
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599)
      return badControl(reply, '"status" must be an HTTP error status (400–599).')
    if (typeof times !== 'number' || !Number.isInteger(times) || times < 0 || times > 10_000)
      return badControl(reply, '"times" must be a whole number from 0 to 10000.')
    const { reason, retryAfterSeconds } = body
    if (reason !== undefined && (typeof reason !== 'string' || !/^[A-Z][A-Z0-9_]{0,63}$/.test(reason)))
      return badControl(reply, '"reason" must be an ErrorInfo reason such as "INSUFFICIENT_SCOPE".')
    if (
      retryAfterSeconds !== undefined &&
      (typeof retryAfterSeconds !== 'number' ||
        !Number.isInteger(retryAfterSeconds) ||
        retryAfterSeconds < 0 ||
        retryAfterSeconds > 3600)
    )
      return badControl(reply, '"retryAfterSeconds" must be a whole number from 0 to 3600.')
    store.failNext(
      endpoint,
      {
        status,
        ...(typeof reason === 'string' ? { reason } : {}),
        ...(typeof retryAfterSeconds === 'number' ? { retryAfterSeconds } : {}),
      },
      times,
    )
    request.log.info({ endpoint, status, times, reason }, 'sandbox: failures armed')
    return { endpoint, status, times }
  })

  app.post('/_control/widen', { preValidation: jsonOnly, schema: { body: WidenControl } }, async (request, reply) => {
    const body = jsonBody(request, reply)
    if (!body) return reply
    store.widenNext = [...(body.addScopes as string[])]
    request.log.info({ addScopes: store.widenNext }, 'sandbox: the next code grants more than chosen')
    return { addScopes: store.widenNext }
  })

  app.post('/_control/shrink', { preValidation: jsonOnly, schema: { body: ShrinkControl } }, async (request, reply) => {
    const body = jsonBody(request, reply)
    if (!body) return reply
    const { userId, clientId, removeScopes } = body
    if (typeof userId !== 'string' || typeof clientId !== 'string')
      return badControl(reply, '"userId" and "clientId" must be strings.')
    if (!Array.isArray(removeScopes) || removeScopes.length === 0 || removeScopes.some((s) => typeof s !== 'string')) {
      return badControl(reply, '"removeScopes" must be a non-empty array of scope names.')
    }
    const matched = store.shrink(userId, clientId, removeScopes as string[])
    if (matched === 0)
      return reply
        .code(404)
        .send({ error: 'not_found', error_description: `No live grant for user ${userId} and client ${clientId}.` })
    request.log.info({ userId, clientId, removeScopes }, 'sandbox: grant will shrink at next refresh')
    return { matchedGrants: matched }
  })

  // The API's rate limit at run time (0 = off); every window starts afresh.
  app.post(
    '/_control/rate-limit',
    { preValidation: jsonOnly, schema: { body: RateLimitControl } },
    async (request, reply) => {
      const body = jsonBody(request, reply)
      if (!body) return reply
      const current = store.rateLimiter.current
      const next = { ...current }
      for (const key of ['perSecond', 'perMinute'] as const) {
        const v = body[key]
        if (v === undefined) continue
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 100_000)
          return badControl(reply, `"${key}" must be a whole number from 0 (off) to 100000.`)
        next[key] = v
      }
      store.rateLimiter.configure(next)
      request.log.info(next, 'sandbox: rate limit set')
      return next
    },
  )

  // Tokens for demo users as if an integrator had connected them earlier (the import demo):
  // JSON Lines in Scope Ledger's import format; `scopes` only with ?include_scopes=1.
  app.post<{ Querystring: Params }>(
    '/_control/mint-grants',
    { preValidation: jsonOnly, schema: { body: MintGrantsControl, querystring: MintGrantsQuery } },
    async (request, reply) => {
      const body = jsonBody(request, reply)
      if (!body) return reply
      const client = typeof body.clientId === 'string' ? store.clients.get(body.clientId) : undefined
      if (!client) return badControl(reply, '"clientId" must be the client id of a registered application.')
      const scopes = body.scopes ?? client.scopes
      if (!Array.isArray(scopes) || scopes.length === 0 || scopes.some((x) => typeof x !== 'string'))
        return badControl(reply, '"scopes" must be a non-empty array of scope names.')
      const notAllowed = (scopes as string[]).filter((x) => !client.scopes.includes(x))
      if (notAllowed.length > 0) return badControl(reply, `${client.name} may not hold: ${notAllowed.join(' ')}`)
      const ttl = body.expiresInSeconds ?? ACCESS_TOKEN_TTL_S
      if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < -86_400 || ttl > 86_400)
        return badControl(reply, '"expiresInSeconds" must be a whole number from -86400 to 86400.')
      if (body.randomSubset !== undefined && typeof body.randomSubset !== 'boolean')
        return badControl(reply, '"randomSubset" must be true or false.')
      const entries = body.users === 'all' ? demoUsers.map((u) => u.id) : body.users
      if (!Array.isArray(entries) || entries.length === 0)
        return badControl(reply, '"users" must be "all" or a non-empty array of demo user ids (or {"id", "scopes"}).')
      const wanted: Array<{ user: DemoUser; scopes: string[] | null }> = []
      for (const entry of entries) {
        const id = typeof entry === 'string' ? entry : isRecord(entry) && typeof entry.id === 'string' ? entry.id : null
        const user = id ? findDemoUser(id) : undefined
        if (!user) return badControl(reply, `Unknown demo user: ${JSON.stringify(entry)}.`)
        if (wanted.some((w) => w.user.id === user.id)) return badControl(reply, `Demo user ${user.id} is listed twice.`)
        const own = isRecord(entry) ? entry.scopes : undefined
        if (own !== undefined) {
          if (
            !Array.isArray(own) ||
            own.length === 0 ||
            own.some((x) => typeof x !== 'string' || !client.scopes.includes(x))
          )
            return badControl(reply, `The scopes of ${user.id} must be a non-empty subset of ${client.name}'s scopes.`)
        }
        wanted.push({ user, scopes: (own as string[] | undefined) ?? null })
      }
      const includeScopes = /^(1|true|yes)$/i.test(single(request.query, 'include_scopes') ?? '')
      const lines = wanted.map(({ user, scopes: own }) => {
        const granted = own ?? (body.randomSubset ? randomSubset(scopes as string[]) : (scopes as string[]))
        const minted = store.mintGrant(client, user.id, granted, ttl)
        return JSON.stringify({
          carta_user_id: user.id,
          client_id: client.clientId,
          email: user.email,
          name: `${user.firstName} ${user.lastName}`,
          access_token: minted.accessToken,
          refresh_token: minted.refreshToken,
          access_expires_at: new Date(minted.accessExpiresAt).toISOString(),
          ...(includeScopes ? { scopes: minted.scopes.join(' ') } : {}),
        })
      })
      request.log.info({ clientId: client.clientId, grants: lines.length }, 'sandbox: grants minted')
      return reply
        .header('cache-control', 'no-store')
        .type('application/x-ndjson; charset=utf-8')
        .send(`${lines.join('\n')}\n`)
    },
  )

  app.post('/_control/reset', { preValidation: jsonOnly, schema: { body: ResetControl } }, async (request, reply) => {
    const body = jsonBody(request, reply)
    if (!body) return reply
    store.reset()
    request.log.info('sandbox: reset')
    return { reset: true }
  })
}

function formatDuration(seconds: number): string {
  const h = Math.floor(Math.abs(seconds) / 3600)
  const m = Math.floor((Math.abs(seconds) % 3600) / 60)
  return `${seconds < 0 ? '-' : ''}${h} h${m ? ` ${m} min` : ''}`
}

export const ERROR_INFO_TYPE = 'type.googleapis.com/carta.proto.publicapi.errors.v1alpha1.ErrorInfo'

/** HTTP status → google.rpc.Code and message, for injected API failures. */
const RPC_CODES: Record<number, [number, string]> = {
  400: [3, 'Invalid argument'],
  401: [16, 'Unauthorized'],
  403: [7, 'Access to resource denied'],
  404: [5, 'Resource not found'],
  409: [10, 'Aborted'],
  500: [13, 'Internal error'],
  501: [12, 'Not implemented'],
  503: [14, 'Service unavailable'],
  504: [4, 'Deadline exceeded'],
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A random non-empty subset (the demo of users who granted only part of what was asked). */
function randomSubset(scopes: string[]): string[] {
  const chosen = scopes.filter(() => randomInt(2) === 1)
  return chosen.length > 0 ? chosen : [scopes[randomInt(scopes.length)]!]
}

/** Carta's Decimal: a decimal string in {"value"} (protobuf keeps exact decimals as strings). */
const decimal = (n: number) => ({ value: n.toFixed(2) })
const usd = (n: number) => ({ currencyCode: { value: 'USD' }, amount: { value: n.toFixed(2) } })

/**
 * Carta's CapitalizationTable for a demo issuer, shaped as documented
 * (https://open-cap-table-coalition.github.io/Tevatron/types/capitalization_table/): share class
 * summaries carry ids, not names; fully diluted = share classes + option pools + warrants.
 */
export function capitalizationTable(issuer: DemoIssuer, asOfDate: string) {
  const outstanding = issuer.shareClasses.reduce((n, c) => n + c.outstanding, 0)
  const fullyDiluted =
    outstanding +
    issuer.optionPools.reduce((n, p) => n + p.authorized, 0) +
    issuer.warrantBlocks.reduce((n, w) => n + w.outstanding, 0)
  const cash =
    issuer.shareClasses.reduce((n, c) => n + c.cashRaised, 0) +
    issuer.warrantBlocks.reduce((n, w) => n + w.cashRaised, 0) +
    issuer.noteBlocks.reduce((n, b) => n + b.principal, 0)
  return {
    issuerId: issuer.id,
    asOfDate: { value: asOfDate },
    summary: {
      fullyDilutedShares: decimal(fullyDiluted),
      outstandingShares: decimal(outstanding),
      cashRaised: usd(cash),
    },
    shareClassSummaries: issuer.shareClasses.map((c) => ({
      shareClassId: c.id,
      optionPoolIds: issuer.optionPools.filter((p) => p.shareClassId === c.id).map((p) => p.id),
      fullyDilutedShares: decimal(c.outstanding),
      outstandingShares: decimal(c.outstanding),
      cashRaised: usd(c.cashRaised),
    })),
    optionPoolSummaries: issuer.optionPools.map((p) => ({
      optionPoolId: p.id,
      shareClassId: p.shareClassId,
      name: p.name,
      fullyDilutedShares: decimal(p.authorized),
      outstandingEquityAwardDerivatives: decimal(p.outstandingAwards),
      outstandingCommittedRestrictedStockAwards: decimal(0),
      authorizedShares: decimal(p.authorized),
    })),
    warrantBlockSummaries: issuer.warrantBlocks.map((w) => ({
      warrantBlockId: w.id,
      shareClassId: w.shareClassId,
      fullyDilutedShares: decimal(w.outstanding),
      outstandingWarrants: decimal(w.outstanding),
      cashRaised: usd(w.cashRaised),
    })),
    noteBlockSummaries: issuer.noteBlocks.map((b) => ({
      noteBlockId: b.id,
      cashRaised: usd(b.principal),
      principal: usd(b.principal),
      interest: usd(b.interest),
    })),
  }
}

// Page tokens are opaque to clients; here base64url of the list they belong to and an offset.
function encodePageToken(list: string, offset: number): string {
  return Buffer.from(JSON.stringify({ l: list, o: offset })).toString('base64url')
}

function decodePageToken(token: string): { list: string; offset: number } | null {
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(token)) return null
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { l?: unknown; o?: unknown }
    if (typeof v.l !== 'string' || typeof v.o !== 'number' || !Number.isInteger(v.o) || v.o < 0) return null
    return { list: v.l, offset: v.o }
  } catch {
    return null
  }
}
