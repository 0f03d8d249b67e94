// Rollouts and members for the link tests. A member is an end user with a grant recorded through
// the product's changeGrant (test/helpers/ledger.ts), so the membership rows of every active
// rollout are exactly what the rollouts module writes.
import type { Db } from '../../src/db/index.js'
import { formatScopes } from '../../src/scopes.js'
import type { TestApp } from '../helpers/app.js'
import type { Agent } from '../helpers/browser-agent.js'
import { type Ledger, addGrant, addUser, appId, signedInOperator } from '../helpers/ledger.js'

export { appId }

/**
 * An active rollout whose build is done, created empty: users who already exist are not measured
 * into it (the builder is tested in test/rollouts/); users granted afterwards join it through
 * changeGrant, as they would join any active rollout.
 */
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

/** A user with an active grant on an app: a member of every active rollout. */
export async function createMember(ledger: Ledger, user: UserInput, now: number): Promise<number> {
  const userId = await addUser(ledger.db, now, { carta: user.cartaUserId, email: user.email, name: user.email })
  await addGrant(ledger, userId, user.appKey, user.granted, now)
  return userId
}

export async function auditRows(db: Db, type?: string) {
  let q = db.selectFrom('audit_events').selectAll().orderBy('id')
  if (type) q = q.where('type', '=', type)
  return (await q.execute()).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }))
}

/** An Agent signed in as an operator through the real sign-in page. */
export async function operatorAgent(test: TestApp, username = 'ops'): Promise<Agent> {
  return signedInOperator(test.db, test.url, test.clock.now(), username)
}
