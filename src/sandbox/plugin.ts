// The sandbox Carta's HTTP surface: login and consent pages, token and revocation endpoints,
// the v1alpha1 API, and the JSON controls tests and the demo use. Mounted inside the app under
// /sandbox (routes.ts) or run on its own port (build.ts). All state is in the SandboxStore.
import { createHmac } from 'node:crypto'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { describeScope, formatScopes, parseScopes } from '../scopes.js'
import { localRedirect } from '../http/redirect.js'
import { eta } from '../views.js'
import { type DemoUser, demoUsers, findDemoIssuer, findDemoUser } from './data.js'
import {
  AuthorizeQuery,
  ClockControl,
  ClockForm,
  ConsentForm,
  FailControl,
  NextQuery,
  ResetControl,
  RevokeForm,
  ShrinkControl,
  SignInForm,
  SignOutForm,
  TokenForm,
} from './schemas.js'
import { type FailEndpoint, OAuthError, type SandboxStore, safeEqual, single } from './store.js'

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
    const status = store.takeFailure(endpoint)
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
      let response: ReturnType<SandboxStore['exchangeCode']>
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

  // --- API (RFC 6750 bearer tokens) ------------------------------------------------------------

  const apiError = (reply: FastifyReply, status: number, challenge: string, body: Record<string, string>) =>
    reply.code(status).header('www-authenticate', challenge).header('cache-control', 'no-store').send(body)

  /** The token's user when the request carries a live access token holding `scope`; else answers. */
  const requireScope = (request: FastifyRequest, reply: FastifyReply, scope: string): DemoUser | null => {
    store.counters.apiCalls++
    if (injectedFailure(request, reply, 'api')) return null
    const m = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(request.headers.authorization ?? '')
    const token = m ? store.liveAccessToken(m[1]!) : null
    if (!request.headers.authorization) {
      // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
      void apiError(reply, 401, `Bearer realm="${REALM}"`, {
        error: 'invalid_token',
        error_description: 'An access token is required.',
      })
    } else if (!m) {
      void apiError(reply, 401, `Bearer realm="${REALM}", error="invalid_request"`, {
        error: 'invalid_request',
        error_description: 'Malformed Authorization header.',
      })
    } else if (!token) {
      const challenge = `Bearer realm="${REALM}", error="invalid_token", error_description="The access token is unknown, expired or revoked"`
      void apiError(reply, 401, challenge, {
        error: 'invalid_token',
        error_description: 'The access token is unknown, expired or revoked.',
      })
    } else if (!token.scopes.includes(scope)) {
      const challenge = `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"`
      void apiError(reply, 403, challenge, {
        error: 'insufficient_scope',
        error_description: `This call needs the scope ${scope}.`,
        scope,
      })
    } else {
      return findDemoUser(token.userId) ?? null
    }
    store.counters.apiErrors++
    request.log.warn({ status: reply.statusCode, needed: scope }, 'sandbox: API request refused')
    return null
  }

  app.get('/v1alpha1/user', async (request, reply) => {
    const user = requireScope(request, reply, 'read_user_info')
    if (!user) return reply
    return { id: user.id, email: user.email, firstName: user.firstName, lastName: user.lastName }
  })

  app.get('/v1alpha1/issuers', async (request, reply) => {
    const user = requireScope(request, reply, 'read_issuer_info')
    if (!user) return reply
    const issuers = user.issuerIds
      .map((id) => findDemoIssuer(id)!)
      .map((i) => ({ id: i.id, legalName: i.legalName, dbaName: i.dbaName }))
    return { issuers, nextPageToken: null }
  })

  app.get<{ Params: { issuerId: string } }>(
    '/v1alpha1/issuers/:issuerId/capitalization-table-summary',
    async (request, reply) => {
      const user = requireScope(request, reply, 'read_issuer_capitalizationtablesummary')
      if (!user) return reply
      const issuer = user.issuerIds.includes(request.params.issuerId)
        ? findDemoIssuer(request.params.issuerId)
        : undefined
      if (!issuer) {
        store.counters.apiErrors++
        return reply
          .code(404)
          .send({ error: 'not_found', error_description: 'No issuer with this id is visible to the user.' })
      }
      const sum = (key: 'outstanding' | 'fullyDiluted') => issuer.shareClasses.reduce((n, c) => n + c[key], 0)
      return {
        issuerId: issuer.id,
        asOfDate: new Date(store.now()).toISOString().slice(0, 10),
        currency: 'USD',
        fullyDilutedShares: sum('fullyDiluted'),
        outstandingShares: sum('outstanding'),
        shareClasses: issuer.shareClasses.map((c) => ({ ...c })),
      }
    },
  )

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
    store.failNext(endpoint, status, times)
    request.log.info({ endpoint, status, times }, 'sandbox: failures armed')
    return { endpoint, status, times }
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
