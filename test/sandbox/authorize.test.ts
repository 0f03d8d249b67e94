// The sandbox's authorization endpoint, sign-in and consent pages, over real HTTP.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import { answerConsent, authorizeUrl, control, signIn } from './helpers.js'

t.test('authorization endpoint', async (t) => {
  const app = await startTestApp(t)
  const base = `${app.url}/sandbox`
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const redirectUri = `${app.url}/carta/callback`
  const good = {
    response_type: 'code',
    client_id: v2.clientId,
    redirect_uri: redirectUri,
    scope: v2.scopes.join(' '),
    state: 'state-123',
  }

  t.test('unknown client: an error page, never a redirect', async (t) => {
    const res = await new Agent().get(authorizeUrl(base, { ...good, client_id: 'nobody' }))
    t.equal(res.status, 400)
    t.equal(res.location, null)
    t.match(res.text, /Unknown application/)
    t.match(res.text, /nobody/)
    t.ok(
      app.logs.some((l) => l.msg === 'sandbox: Unknown application' && l.level === 40),
      'warn line logged',
    )
  })

  t.test('unregistered redirect URI: an error page, never a redirect (RFC 6749 §4.1.2.1)', async (t) => {
    for (const uri of [
      'https://evil.example/callback',
      `${redirectUri}/`,
      `${redirectUri}?x=1`,
      redirectUri.toUpperCase(),
    ]) {
      const res = await new Agent().get(authorizeUrl(base, { ...good, redirect_uri: uri }))
      t.equal(res.status, 400, uri)
      t.equal(res.location, null, `no redirect for ${uri}`)
      t.match(res.text, /not registered/)
    }
    const missing = await new Agent().get(authorizeUrl(base, { ...good, redirect_uri: undefined }))
    t.equal(missing.status, 400)
    t.equal(missing.location, null)
  })

  t.test('a scope the client may not request: redirect back with invalid_scope and the state', async (t) => {
    const res = await new Agent().get(
      authorizeUrl(base, {
        ...good,
        client_id: v1.clientId,
        scope: 'read_user_info read_issuer_capitalizationtablesummary',
      }),
    )
    t.equal(res.status, 302)
    const back = new URL(res.location!)
    t.equal(`${back.origin}${back.pathname}`, redirectUri)
    t.equal(back.searchParams.get('error'), 'invalid_scope')
    t.equal(back.searchParams.get('state'), 'state-123')
    t.notOk(back.searchParams.get('code'))
  })

  t.test('response_type other than code, or no scope, or plain PKCE: redirect with an error', async (t) => {
    const cases: Array<[Record<string, string | undefined>, string]> = [
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ response_type: undefined }, 'invalid_request'],
      [{ scope: '' }, 'invalid_scope'],
      [{ code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }, 'invalid_request'],
      [{ code_challenge: 'a'.repeat(43) }, 'invalid_request'],
      [{ code_challenge: 'short', code_challenge_method: 'S256' }, 'invalid_request'],
    ]
    for (const [change, error] of cases) {
      const res = await new Agent().get(authorizeUrl(base, { ...good, ...change }))
      t.equal(res.status, 302, JSON.stringify(change))
      const back = new URL(res.location!)
      t.equal(back.searchParams.get('error'), error, JSON.stringify(change))
      t.equal(back.searchParams.get('state'), 'state-123')
    }
  })

  t.test('not signed in: the sign-in page lists the demo users; signing in sets a path-scoped cookie', async (t) => {
    const agent = new Agent()
    const url = authorizeUrl(base, good)
    const page = await agent.get(url)
    t.equal(page.status, 200)
    t.match(page.text, /Choose a demo user/)
    t.match(page.text, /Production v2<\/strong> wants to connect/)
    for (const id of ['cu_1001', 'cu_1002', 'cu_1003', 'cu_1004', 'cu_1005']) t.match(page.text, `value="${id}"`)
    const next = hiddenField(page.text, 'next')
    t.equal(next, new URL(url).pathname + new URL(url).search, 'comes back to the same authorization request')
    const res = await agent.post(`${base}/login`, { user_id: 'cu_1002', next })
    t.equal(res.status, 303)
    t.equal(res.location, next)
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('sandbox_user='))!
    t.match(cookie, /Path=\/sandbox/)
    t.match(cookie, /HttpOnly/)
    t.match(cookie, /SameSite=Lax/)
    t.notOk(agent.cookieNames(app.url).includes('sl_session'), "the app's session is not used")
    const consent = await agent.get(url)
    t.match(consent.text, /Ben Hartley/)
    t.match(consent.text, /Production v2 wants access/)
  })

  t.test('a forged sign-in cookie is ignored', async (t) => {
    const res = await fetch(authorizeUrl(base, good), { headers: { cookie: 'sandbox_user=cu_1001.forged' } })
    t.match(await res.text(), /Choose a demo user/)
  })

  t.test('post-sign-in destination stays inside the sandbox', async (t) => {
    const agent = new Agent()
    for (const next of ['https://evil.example/', '//evil.example/', '/admin']) {
      const res = await agent.post(`${base}/login`, { user_id: 'cu_1001', next })
      t.equal(res.location, '/sandbox/', next)
    }
    const bad = await agent.post(`${base}/login`, { user_id: 'cu_9999', next: '/sandbox/' })
    t.equal(bad.status, 400)
  })

  t.test('consent: one checkbox per requested scope, all checked, described in plain words', async (t) => {
    const agent = new Agent()
    await signIn(agent, base, 'cu_1001')
    const page = await agent.get(authorizeUrl(base, good))
    t.equal(page.status, 200)
    t.equal(page.headers.get('cache-control'), 'no-store')
    for (const s of v2.scopes)
      t.match(page.text, new RegExp(`<input type="checkbox" name="scope" value="${s}" checked>`))
    t.match(page.text, /See your name and email address/)
    t.match(page.text, /cap table/)
    t.match(page.text, /Ada Okafor/)
    t.match(page.text, /value="allow">Allow/)
    t.match(page.text, /value="deny">Deny/)
  })

  t.test('allow a subset: code and state come back; the code carries only that subset', async (t) => {
    const agent = new Agent()
    await signIn(agent, base, 'cu_1001')
    const back = await answerConsent(agent, authorizeUrl(base, good), { decision: 'allow', scopes: ['read_user_info'] })
    t.equal(`${back.origin}${back.pathname}`, redirectUri)
    t.equal(back.searchParams.get('state'), 'state-123')
    t.ok(back.searchParams.get('code'))
    t.notOk(back.searchParams.get('error'))
    const stats = await control(base, 'stats')
    t.equal(stats.json.consents, 1)
    t.ok(
      app.logs.some((l) => l.msg === 'sandbox: access granted' && l.scopes === 'read_user_info'),
      'grant logged',
    )
    t.notOk(JSON.stringify(app.logs).includes(back.searchParams.get('code')!), 'the code never reaches the log')
  })

  t.test('deny, and an empty selection, send access_denied with the state', async (t) => {
    const agent = new Agent()
    await signIn(agent, base, 'cu_1003')
    const denied = await answerConsent(agent, authorizeUrl(base, good), { decision: 'deny' })
    t.equal(denied.searchParams.get('error'), 'access_denied')
    t.equal(denied.searchParams.get('state'), 'state-123')
    t.notOk(denied.searchParams.get('code'))
    const empty = await answerConsent(agent, authorizeUrl(base, good), { decision: 'allow', scopes: [] })
    t.equal(empty.searchParams.get('error'), 'access_denied')
    t.notOk(empty.searchParams.get('code'))
  })

  t.test('a consent answer is single-use, bound to its user, and limited to the requested scopes', async (t) => {
    const agent = new Agent()
    await signIn(agent, base, 'cu_1001')
    const page = await agent.get(authorizeUrl(base, { ...good, scope: 'read_user_info' }))
    const requestId = hiddenField(page.text, 'request_id')
    const tampered = await agent.post(`${base}/o/authorize/`, {
      request_id: requestId,
      decision: 'allow',
      scope: ['read_user_info', 'read_issuer_info'],
    })
    t.equal(tampered.status, 400)
    t.equal(tampered.location, null)
    t.match(tampered.text, /not requested/)

    const page2 = await agent.get(authorizeUrl(base, good))
    const id2 = hiddenField(page2.text, 'request_id')
    const other = new Agent()
    await signIn(other, base, 'cu_1002')
    const stolen = await other.post(`${base}/o/authorize/`, {
      request_id: id2,
      decision: 'allow',
      scope: 'read_user_info',
    })
    t.equal(stolen.status, 400, "another user cannot answer someone else's consent page")
    const anonymous = await new Agent().post(`${base}/o/authorize/`, {
      request_id: id2,
      decision: 'allow',
      scope: 'read_user_info',
    })
    t.equal(anonymous.status, 400, 'a cross-site post without the sign-in cookie is refused')
    const ok = await agent.post(`${base}/o/authorize/`, { request_id: id2, decision: 'allow', scope: 'read_user_info' })
    t.equal(ok.status, 302)
    const again = await agent.post(`${base}/o/authorize/`, {
      request_id: id2,
      decision: 'allow',
      scope: 'read_user_info',
    })
    t.equal(again.status, 400)
    t.match(again.text, /expired/)
  })

  t.test('switch user signs out and returns to the sign-in page for the same request', async (t) => {
    const agent = new Agent()
    await signIn(agent, base, 'cu_1001')
    const url = authorizeUrl(base, good)
    const page = await agent.get(url)
    const res = await agent.post(`${base}/logout`, { next: hiddenField(page.text, 'next') })
    t.equal(res.status, 303)
    t.match(res.location!, /^\/sandbox\/login\?next=/)
    t.notOk(agent.cookieNames(app.url).includes('sandbox_user'))
    const signInPage = await agent.follow(res)
    t.match(signInPage.text, /Choose a demo user/)
    t.equal(hiddenField(signInPage.text, 'next'), new URL(url).pathname + new URL(url).search)
  })
})
