// Shared steps for the lifecycle tests: connect an end user through the real flow against the
// embedded sandbox, sign an operator in, read sandbox counters, move the shared clock.
import type { ManualClock } from '../../src/clock.js'
import { createOperator } from '../../src/admin/operators.js'
import type { TestApp } from './app.js'
import { Agent, type AgentResponse, hiddenField } from './browser-agent.js'
import { answerConsent, signIn } from '../sandbox/helpers.js'

export interface Connected {
  agent: Agent
  userId: number
  grantId: number
  landed: AgentResponse
}

/** /carta/connect?app=… → sandbox sign-in + consent (optionally a subset) → callback → landing page. */
export async function connectUser(
  app: TestApp,
  options: { cartaUser?: string; appKey?: string; grant?: string[]; agent?: Agent } = {},
): Promise<Connected> {
  const agent = options.agent ?? new Agent()
  const start = await agent.get(`${app.url}/carta/connect${options.appKey ? `?app=${options.appKey}` : ''}`)
  if (start.status !== 303 || !start.location)
    throw new Error(`connect did not redirect: ${start.status} ${start.text.slice(0, 200)}`)
  return finishAuthorization(app, agent, start.location, options)
}

/** From Carta's authorize URL to the page the callback lands on. */
export async function finishAuthorization(
  app: TestApp,
  agent: Agent,
  authorizeUrl: string,
  options: { cartaUser?: string; grant?: string[] } = {},
): Promise<Connected> {
  await signIn(agent, `${app.url}/sandbox`, options.cartaUser ?? 'cu_1001')
  const back = await answerConsent(agent, authorizeUrl, {
    decision: 'allow',
    ...(options.grant ? { scopes: options.grant } : {}),
  })
  const callback = await agent.get(back.toString())
  if (callback.status !== 303) throw new Error(`callback failed: ${callback.status} ${callback.text.slice(0, 400)}`)
  const landed = await agent.follow(callback)
  const user = await app.db
    .selectFrom('end_users')
    .select(['id', 'active_grant_id'])
    .orderBy('updated_at', 'desc')
    .orderBy('id', 'desc')
    .executeTakeFirstOrThrow()
  return { agent, userId: user.id, grantId: user.active_grant_id!, landed }
}

export async function signInOperator(app: TestApp, username = 'ops'): Promise<Agent> {
  await createOperator(app.db, username, 'correct horse battery staple', app.clock.now())
  const agent = new Agent()
  const page = await agent.get(`${app.url}/admin/sign-in`)
  const res = await agent.post(`${app.url}/admin/sign-in`, {
    _csrf: hiddenField(page.text, '_csrf'),
    username,
    password: 'correct horse battery staple',
    next: '/admin',
  })
  if (res.status !== 303) throw new Error(`operator sign-in failed: ${res.status}`)
  return agent
}

export interface SandboxStats {
  refreshes: number
  revocations: number
  [key: string]: unknown
}

export async function sandboxStats(app: TestApp): Promise<SandboxStats> {
  const res = await fetch(`${app.url}/sandbox/_control/stats`)
  return (await res.json()) as SandboxStats
}

export async function sandboxControl(app: TestApp, name: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${app.url}/sandbox/_control/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (res.status !== 200) throw new Error(`sandbox control ${name} failed: ${res.status} ${await res.text()}`)
  return (await res.json()) as Record<string, unknown>
}

/** Moves our clock (and with it the sandbox's, which reads the same clock) past token expiry. */
export function expireTokens(app: TestApp, seconds = 2 * 3600): void {
  ;(app.clock as ManualClock).advance(seconds * 1000)
}

export function accessDeps(app: TestApp) {
  return { ...app.app.deps }
}

export async function tokenVersion(app: TestApp, grantId: number): Promise<number> {
  const row = await app.db
    .selectFrom('grant_tokens')
    .select(['version'])
    .where('grant_id', '=', grantId)
    .executeTakeFirstOrThrow()
  return row.version
}
