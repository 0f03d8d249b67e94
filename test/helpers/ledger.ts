// Test data in the ledger, written through the functions the product uses: a grant is recorded
// by changeGrant (src/grants/change.ts), so the supersede rule, the audit event and the rollout
// membership come out exactly as a real connection makes them. End users are inserted directly
// (the connect flow's identity rules are tested with the real flow, test/flows/).
import { createHash, createHmac } from 'node:crypto'
import { createOperator } from '../../src/admin/operators.js'
import type { Db } from '../../src/db/index.js'
import type { AppDeps } from '../../src/deps.js'
import { changeGrant } from '../../src/grants/change.js'
import { Agent, hiddenField } from './browser-agent.js'

/** What the fixtures need of an app: its database and token cipher (`testApp.app.deps`). */
export type Ledger = Pick<AppDeps, 'db' | 'cipher'>

export async function appId(db: Db, key: string): Promise<number> {
  const row = await db.selectFrom('oauth_apps').select('id').where('key', '=', key).executeTakeFirstOrThrow()
  return row.id
}

export async function addUser(
  db: Db,
  now: number,
  fields: { carta?: string; email?: string; name?: string } = {},
): Promise<number> {
  const row = await db
    .insertInto('end_users')
    .values({
      carta_user_id: fields.carta ?? null,
      local_key: fields.carta ? null : `local-${createHash('sha1').update(String(Math.random())).digest('hex')}`,
      email: fields.email ?? null,
      name: fields.name ?? null,
      active_grant_id: null,
      status: 'connected',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

/** A new active grant for the user, as a connection records it (the previous one is superseded). */
export async function addGrant(
  ledger: Ledger,
  userId: number,
  appKey: string,
  scopes: string[],
  now: number,
): Promise<number> {
  const app = { id: await appId(ledger.db, appKey), key: appKey }
  const tokens = { accessToken: `at-${userId}-${now}`, refreshToken: `rt-${userId}-${now}`, tokenType: 'Bearer' }
  const result = await ledger.db.transaction().execute((trx) =>
    changeGrant(
      trx,
      ledger.cipher,
      {
        kind: 'granted',
        userId,
        app,
        requested: scopes,
        granted: scopes,
        source: 'reported',
        tokens: { ...tokens, expiresAt: now + 3600_000, scope: scopes.join(' ') },
        actor: `user:${userId}`,
      },
      now,
    ),
  )
  return result.grantId
}

/** The user's active grant broke (invalid_grant on refresh): the user must reconnect. */
export async function breakGrant(ledger: Ledger, userId: number, now: number): Promise<void> {
  const user = await ledger.db
    .selectFrom('end_users')
    .select('active_grant_id')
    .where('id', '=', userId)
    .executeTakeFirstOrThrow()
  if (user.active_grant_id === null) throw new Error(`user ${userId} has no active grant to break`)
  const grantId = user.active_grant_id
  await ledger.db
    .transaction()
    .execute((trx) => changeGrant(trx, ledger.cipher, { kind: 'broken', grantId, reason: 'invalid_grant' }, now))
}

export const OPERATOR_PASSWORD = 'correct horse battery staple'

/** Creates an operator and returns an agent signed in as it through the real sign-in page. */
export async function signedInOperator(db: Db, url: string, now: number, username = 'ops'): Promise<Agent> {
  await createOperator(db, username, OPERATOR_PASSWORD, now)
  const agent = new Agent()
  const page = await agent.get(`${url}/admin/sign-in`)
  const res = await agent.post(`${url}/admin/sign-in`, {
    _csrf: hiddenField(page.text, '_csrf'),
    username,
    password: OPERATOR_PASSWORD,
    next: '/admin',
  })
  if (res.status !== 303) throw new Error(`sign-in failed: ${res.status}`)
  return agent
}

/** The session cookie @fastify/session would set for `sid` (cookie-signature: HMAC-SHA256, base64 without padding). */
export function signedSessionCookie(sid: string, secret: string): string {
  const mac = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '')
  return `sl_session=${encodeURIComponent(`${sid}.${mac}`)}`
}
