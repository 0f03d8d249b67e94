// Rows for link tests written straight into the database: users with an active grant on an app,
// a rollout, and the membership rows the rollouts module maintains (rollout_members + missing).
import type { Db } from '../../src/db/index.js'
import { formatScopes, missingScopes } from '../../src/scopes.js'
import type { Agent } from '../helpers/browser-agent.js'
import { appId, signedInOperator } from '../rollouts/fixtures.js'

export { appId }
import type { TestApp } from '../helpers/app.js'

export async function createRollout(
  db: Db,
  input: { name?: string; appKey?: string; scopes?: string[]; now: number },
): Promise<{ id: number; scopes: string[] }> {
  const app = await db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('key', '=', input.appKey ?? 'production-v2')
    .executeTakeFirstOrThrow()
  const scopes = input.scopes ?? app.scopes.split(' ')
  const { id } = await db
    .insertInto('rollouts')
    .values({
      name: input.name ?? 'Cap table summary',
      app_id: app.id,
      required_scopes: formatScopes(scopes),
      created_by: 'operator:test',
      created_at: input.now,
      archived_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return { id: Number(id), scopes }
}

export interface UserInput {
  cartaUserId: string
  email: string
  appKey: string
  granted: string[]
}

/** A user with an active grant, and their membership row in the rollout (as the rollouts module would write it). */
export async function createMember(
  db: Db,
  rollout: { id: number; scopes: string[] },
  user: UserInput,
  now: number,
): Promise<number> {
  const app = await appId(db, user.appKey)
  const { id: userId } = await db
    .insertInto('end_users')
    .values({
      carta_user_id: user.cartaUserId,
      local_key: null,
      email: user.email,
      name: user.email,
      active_grant_id: null,
      status: 'connected',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  const { id: grantId } = await db
    .insertInto('grants')
    .values({
      user_id: userId,
      app_id: app,
      requested_scopes: formatScopes(user.granted),
      granted_scopes: formatScopes(user.granted),
      scopes_source: 'reported',
      status: 'active',
      status_reason: null,
      created_at: now,
      ended_at: null,
      superseded_by: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  if (user.granted.length)
    await db
      .insertInto('grant_scopes')
      .values(user.granted.map((scope) => ({ grant_id: grantId, scope })))
      .execute()
  await db.updateTable('end_users').set({ active_grant_id: grantId }).where('id', '=', userId).execute()
  await setMembership(db, rollout, Number(userId), app, user.granted, now)
  return Number(userId)
}

export async function setMembership(
  db: Db,
  rollout: { id: number; scopes: string[] },
  userId: number,
  app: number,
  granted: string[],
  now: number,
): Promise<void> {
  const missing = missingScopes(rollout.scopes, granted)
  await db.deleteFrom('rollout_members').where('rollout_id', '=', rollout.id).where('user_id', '=', userId).execute()
  await db
    .deleteFrom('rollout_member_missing')
    .where('rollout_id', '=', rollout.id)
    .where('user_id', '=', userId)
    .execute()
  await db
    .insertInto('rollout_members')
    .values({
      rollout_id: rollout.id,
      user_id: userId,
      app_id: app,
      state: missing.length ? 'lacking' : 'covered',
      needs_action: missing.length ? 1 : 0,
      missing_scopes: formatScopes(missing),
      reason: missing.length ? 'missing_scopes' : null,
      authorized_at: now,
    })
    .execute()
  if (missing.length)
    await db
      .insertInto('rollout_member_missing')
      .values(missing.map((scope) => ({ rollout_id: rollout.id, scope, user_id: userId })))
      .execute()
}

export async function auditRows(db: Db, type?: string) {
  let q = db.selectFrom('audit_events').selectAll().orderBy('id')
  if (type) q = q.where('type', '=', type)
  return (await q.execute()).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }))
}

/** An Agent signed in as an operator through the real sign-in page (rollouts engineer's helper). */
export async function operatorAgent(test: TestApp, username = 'ops'): Promise<Agent> {
  return signedInOperator(test.db, test.url, test.clock.now(), username)
}
