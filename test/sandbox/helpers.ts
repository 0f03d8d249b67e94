// Drives the sandbox Carta over HTTP like a browser and like an OAuth client would.
import { createHash, randomBytes } from 'node:crypto'
import { Agent, type AgentResponse, hiddenField } from '../helpers/browser-agent.js'

export interface ClientCreds {
  clientId: string
  clientSecret: string
  scopes: string[]
}

/** RFC 6749 §2.3.1: form-urlencode id and secret, then base64. */
export function basic(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export function authorizeUrl(base: string, params: Record<string, string | undefined>): string {
  const u = new URL(`${base}/o/authorize/`)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v)
  return u.toString()
}

export async function signIn(agent: Agent, base: string, userId: string): Promise<AgentResponse> {
  const res = await agent.post(`${base}/login`, { user_id: userId, next: new URL(`${base}/`).pathname })
  if (res.status !== 303) throw new Error(`sign-in failed: ${res.status}`)
  return res
}

/** Opens the consent page (signed in already) and answers it; returns the redirect's URL. */
export async function answerConsent(
  agent: Agent,
  url: string,
  answer: { decision: 'allow' | 'deny'; scopes?: string[] },
): Promise<URL> {
  const page = await agent.get(url)
  if (page.status !== 200 || !page.text.includes('name="request_id"'))
    throw new Error(`no consent page: ${page.status} ${page.text.slice(0, 300)}`)
  const scopes = answer.scopes ?? [...page.text.matchAll(/name="scope" value="([^"]+)"/g)].map((m) => m[1]!)
  const action = new URL(url)
  const res = await agent.post(`${action.origin}${action.pathname}`, {
    request_id: hiddenField(page.text, 'request_id'),
    decision: answer.decision,
    scope: scopes,
  })
  if (res.status !== 302 || !res.location)
    throw new Error(`consent answer did not redirect: ${res.status} ${res.text.slice(0, 300)}`)
  return new URL(res.location)
}

export async function tokenRequest(
  base: string,
  form: Record<string, string>,
  authorization?: string,
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (authorization) headers.authorization = authorization
  const res = await fetch(`${base}/o/access_token/`, { method: 'POST', headers, body: new URLSearchParams(form) })
  const text = await res.text()
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }
}

export async function revokeRequest(
  base: string,
  form: Record<string, string>,
  authorization?: string,
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  if (authorization) headers.authorization = authorization
  const res = await fetch(`${base}/o/revoke_token/`, { method: 'POST', headers, body: new URLSearchParams(form) })
  return { status: res.status, text: await res.text() }
}

export async function api(
  base: string,
  path: string,
  accessToken?: string,
): Promise<{ status: number; challenge: string | null; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {} })
  return {
    status: res.status,
    challenge: res.headers.get('www-authenticate'),
    json: (await res.json()) as Record<string, unknown>,
  }
}

export async function control(
  base: string,
  name: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res =
    body === undefined
      ? await fetch(`${base}/_control/${name}`)
      : await fetch(`${base}/_control/${name}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
  return { status: res.status, json: (await res.json()) as Record<string, unknown> }
}

export interface Issued {
  code: string
  verifier: string
  redirectUri: string
}

/** Signs `userId` in, consents (optionally to a subset) and returns the code with its PKCE verifier. */
export async function getCode(
  agent: Agent,
  base: string,
  client: ClientCreds,
  redirectUri: string,
  options: { userId?: string; scopes?: string[]; grant?: string[]; pkce?: boolean } = {},
): Promise<Issued> {
  await signIn(agent, base, options.userId ?? 'cu_1001')
  const { verifier, challenge } = pkcePair()
  const pkce = options.pkce ?? true
  const url = authorizeUrl(base, {
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: redirectUri,
    scope: (options.scopes ?? client.scopes).join(' '),
    state: 'st-' + randomBytes(4).toString('hex'),
    code_challenge: pkce ? challenge : undefined,
    code_challenge_method: pkce ? 'S256' : undefined,
  })
  const back = await answerConsent(agent, url, {
    decision: 'allow',
    ...(options.grant ? { scopes: options.grant } : {}),
  })
  const code = back.searchParams.get('code')
  if (!code) throw new Error(`no code in ${back}`)
  return { code, verifier: pkce ? verifier : '', redirectUri }
}

/** A full code exchange; returns the token response JSON. */
export async function getTokens(
  agent: Agent,
  base: string,
  client: ClientCreds,
  redirectUri: string,
  options: Parameters<typeof getCode>[4] = {},
) {
  const issued = await getCode(agent, base, client, redirectUri, options)
  const form: Record<string, string> = {
    grant_type: 'authorization_code',
    code: issued.code,
    redirect_uri: redirectUri,
  }
  if (issued.verifier) form.code_verifier = issued.verifier
  const res = await tokenRequest(base, form, basic(client.clientId, client.clientSecret))
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${JSON.stringify(res.json)}`)
  return res.json as {
    access_token: string
    refresh_token: string
    scope?: string
    expires_in: number
    token_type: string
  }
}
