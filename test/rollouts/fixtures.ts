// Test data written straight into the ledger (the real OAuth flow is tested elsewhere): users,
// grants with their scopes, the superseding rule, and the membership sync the callback runs.
import { createHash, createHmac } from 'node:crypto'
import type { Db } from '../../src/db/index.js'
import { createOperator } from '../../src/admin/operators.js'
import { syncUserRollouts } from '../../src/rollouts/membership.js'
import { formatScopes } from '../../src/scopes.js'
import { Agent, hiddenField } from '../helpers/browser-agent.js'

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

/** A new active grant for the user (superseding the previous one), then the rollout sync. */
export async function addGrant(db: Db, userId: number, appKey: string, scopes: string[], now: number): Promise<number> {
  const app = await appId(db, appKey)
  return db.transaction().execute(async (trx) => {
    const grant = await trx
      .insertInto('grants')
      .values({
        user_id: userId,
        app_id: app,
        requested_scopes: formatScopes(scopes),
        granted_scopes: formatScopes(scopes),
        scopes_source: 'reported',
        status: 'active',
        status_reason: null,
        created_at: now,
        ended_at: null,
        superseded_by: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await trx
      .updateTable('grants')
      .set({ status: 'superseded', ended_at: now, superseded_by: grant.id })
      .where('user_id', '=', userId)
      .where('status', '=', 'active')
      .where('id', '<>', grant.id)
      .execute()
    if (scopes.length)
      await trx
        .insertInto('grant_scopes')
        .values([...new Set(scopes)].map((scope) => ({ grant_id: grant.id, scope })))
        .execute()
    await trx
      .updateTable('end_users')
      .set({ active_grant_id: grant.id, status: 'connected', updated_at: now })
      .where('id', '=', userId)
      .execute()
    await syncUserRollouts(trx, userId)
    return grant.id
  })
}

/** The token broke (invalid_grant): grant broken, user must reconnect. */
export async function breakGrant(db: Db, userId: number, now: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('grants')
      .set({ status: 'broken', ended_at: now, status_reason: 'invalid_grant' })
      .where('user_id', '=', userId)
      .where('status', '=', 'active')
      .execute()
    await trx
      .updateTable('end_users')
      .set({ status: 'needs_reconnect', updated_at: now })
      .where('id', '=', userId)
      .execute()
    await syncUserRollouts(trx, userId)
  })
}

export const OPERATOR_PASSWORD = 'correct horse battery staple'

/** Creates an operator and returns an agent signed in as it. */
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
