// Rows for report tests, written straight into the database the way the rollouts and links
// modules maintain them (the report reads only these tables), plus an operator browser session.
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import type { Db } from '../../src/db/index.js'
import { formatScopes, missingScopes } from '../../src/scopes.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'
import type { TestApp } from '../helpers/app.js'

const HOUR = 60 * 60 * 1000

export async function appIds(db: Db): Promise<Record<string, number>> {
  const rows = await db.selectFrom('oauth_apps').select(['id', 'key']).execute()
  return Object.fromEntries(rows.map((r) => [r.key, r.id]))
}

export async function insertRollout(
  db: Db,
  input: { name: string; appKey: string; scopes: string[]; now: number; status?: 'active' | 'archived' },
): Promise<number> {
  const apps = await appIds(db)
  const row = await db
    .insertInto('rollouts')
    .values({
      name: input.name,
      app_id: apps[input.appKey]!,
      required_scopes: formatScopes(input.scopes),
      status: input.status ?? 'active',
      created_by: 'operator:test',
      created_at: input.now,
      archived_at: input.status === 'archived' ? input.now : null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return Number(row.id)
}

export async function insertUser(db: Db, n: number, now: number): Promise<number> {
  const row = await db
    .insertInto('end_users')
    .values({
      carta_user_id: `carta-${n}`,
      local_key: null,
      email: `user${n}@example.com`,
      name: `User ${n}`,
      active_grant_id: null,
      status: 'connected',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return Number(row.id)
}

/** A membership row (+ missing rows) as the rollouts module writes it. appKey null = must reconnect. */
export async function insertMember(
  db: Db,
  rollout: { id: number; scopes: string[] },
  userId: number,
  appKey: string | null,
  granted: string[],
  now: number,
): Promise<void> {
  const apps = await appIds(db)
  // A user who must reconnect holds nothing usable: every required scope counts as missing.
  const missing = appKey === null ? [...rollout.scopes] : missingScopes(rollout.scopes, granted)
  const state = appKey === null ? 'reconnect' : missing.length ? 'lacking' : 'covered'
  await db
    .insertInto('rollout_members')
    .values({
      rollout_id: rollout.id,
      user_id: userId,
      app_id: appKey ? apps[appKey]! : null,
      state,
      needs_action: state === 'covered' ? 0 : 1,
      missing_scopes: formatScopes(missing),
      reason: state === 'reconnect' ? 'no_active_grant' : state === 'lacking' ? 'missing_scopes' : null,
      authorized_at: now,
    })
    .execute()
  if (missing.length)
    await db
      .insertInto('rollout_member_missing')
      .values(missing.map((scope) => ({ rollout_id: rollout.id, scope, user_id: userId })))
      .execute()
}

export async function insertLink(
  db: Db,
  rolloutId: number,
  userId: number,
  issuedAt: number,
  usedAt: number | null,
): Promise<void> {
  await db
    .insertInto('reauth_links')
    .values({
      rollout_id: rolloutId,
      user_id: userId,
      nonce: randomBytes(12).toString('hex'),
      issued_by: 'operator:test',
      issued_at: issuedAt,
      expires_at: issuedAt + 14 * 24 * HOUR,
      used_at: usedAt,
      used_grant_id: null,
    })
    .execute()
}

export const ALL = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']
export const V1 = ['read_issuer_info', 'read_user_info']

/**
 * Two active rollouts and one archived:
 *  "Cap table" (production-v2, all 3 scopes): users 1–4 covered on v2, 5–7 on v1 lacking the cap
 *  table scope, 8 on playground with read_user_info only (lacks 2), 9–10 must reconnect.
 *  Links: 4 issued (2 in the last 24 h), 2 used (1 in the last 24 h).
 *  "Issuer info" (production-v2, read_issuer_info): users 1–8 covered except 8; 9–10 reconnect.
 */
export async function seedCoverage(
  db: Db,
  now: number,
): Promise<{ capTable: number; issuer: number; archived: number; users: number[] }> {
  const capTable = await insertRollout(db, { name: 'Cap table', appKey: 'production-v2', scopes: ALL, now })
  const issuer = await insertRollout(db, {
    name: 'Issuer info',
    appKey: 'production-v2',
    scopes: ['read_issuer_info'],
    now,
  })
  const archived = await insertRollout(db, {
    name: 'Old campaign',
    appKey: 'production-v1',
    scopes: V1,
    now,
    status: 'archived',
  })
  const users: number[] = []
  for (let n = 1; n <= 10; n++) users.push(await insertUser(db, n, now))
  const holdings: Array<[string | null, string[]]> = [
    ['production-v2', ALL],
    ['production-v2', ALL],
    ['production-v2', ALL],
    ['production-v2', ALL],
    ['production-v1', V1],
    ['production-v1', V1],
    ['production-v1', V1],
    ['playground', ['read_user_info']],
    [null, []],
    [null, []],
  ]
  for (const [i, [app, granted]] of holdings.entries()) {
    await insertMember(db, { id: capTable, scopes: ALL }, users[i]!, app, granted, now)
    await insertMember(db, { id: issuer, scopes: ['read_issuer_info'] }, users[i]!, app, granted, now)
    await insertMember(db, { id: archived, scopes: V1 }, users[i]!, app, granted, now)
  }
  await insertLink(db, capTable, users[4]!, now - 3 * 24 * HOUR, now - 2 * 24 * HOUR)
  await insertLink(db, capTable, users[5]!, now - 3 * 24 * HOUR, null)
  await insertLink(db, capTable, users[6]!, now - 2 * HOUR, now - HOUR)
  await insertLink(db, capTable, users[7]!, now - HOUR, null)
  return { capTable, issuer, archived, users }
}

/**
 * An Agent with an operator session: through the real /admin/sign-in form when it exists,
 * otherwise by writing the session row and signing its cookie as @fastify/session does.
 */
export async function operatorAgent(test: TestApp, username = 'reporter'): Promise<Agent> {
  const agent = new Agent()
  const password = `pw-${randomBytes(12).toString('hex')}`
  const signIn = await agent.get(`${test.url}/admin/sign-in`)
  if (signIn.status === 200 && /name="password"/.test(signIn.text)) {
    const { createOperator } = await import('../../src/admin/operators.js')
    await createOperator(test.db, username, password, test.clock.now())
    const res = await agent.post(`${test.url}/admin/sign-in`, {
      _csrf: hiddenField(signIn.text, '_csrf'),
      username,
      password,
    })
    if (res.status !== 303 && res.status !== 302) throw new Error(`operator sign-in failed with ${res.status}`)
    return agent
  }
  const now = test.clock.now()
  const { id: operatorId } = await test.db
    .insertInto('operators')
    .values({ username, password_hash: 'test-only', created_at: now, last_sign_in_at: now })
    .returning('id')
    .executeTakeFirstOrThrow()
  const sid = randomBytes(24).toString('base64url')
  const expires = new Date(now + HOUR)
  const session = {
    cookie: {
      originalMaxAge: HOUR,
      expires: expires.toISOString(),
      secure: false,
      httpOnly: true,
      path: '/',
      sameSite: 'lax',
    },
    operatorId,
    operatorName: username,
  }
  await test.db
    .insertInto('sessions')
    .values({ sid, data: JSON.stringify(session), expires_at: expires.getTime() })
    .execute()
  const jar = (agent as unknown as { cookies: Map<string, Map<string, string>> }).cookies
  jar.set(new URL(test.url).origin, new Map([['sl_session', encodeURIComponent(sign(sid, test.config.sessionSecret))]]))
  return agent
}

/** Collects log lines for runner tests that do not go through the app. */
export function memoryLog() {
  const lines: Array<{ level: string; msg: string; obj: Record<string, unknown> }> = []
  const at = (level: string) => (obj: object, msg: string) =>
    void lines.push({ level, msg, obj: obj as Record<string, unknown> })
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } }
}
