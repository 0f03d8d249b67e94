// Retiring a Carta app (an operator's decision, kept across restarts by syncApps): no new
// connection uses it, and its users need to reauthorize in every rollout. Every retired app may
// name a successor (chosen when retiring, or later): the active app its users reconnect with.
import { recordAudit } from '../audit/events.js'
import type { Db } from '../db/index.js'
import { DomainError } from '../errors.js'
import { syncUsersOnApp } from '../rollouts/membership.js'

export interface RetireResult {
  appId: number
  newCurrentAppId: number | null
}

/**
 * Retires an app: no new connection uses it and its users need to reauthorize in every rollout.
 * The current app of an environment may be retired only if another active app of that
 * environment takes over as current (`newCurrentAppId`), so connect always has an app to use.
 */
export async function retireApp(
  db: Db,
  appId: number,
  options: { newCurrentAppId?: number | null; successorAppId?: number | null; actor: string; now: number },
): Promise<RetireResult> {
  const { actor, now } = options
  const result = await db.transaction().execute(async (trx) => {
    const app = await trx.selectFrom('oauth_apps').selectAll().where('id', '=', appId).executeTakeFirst()
    if (!app) throw new DomainError('app.not_found', `There is no app ${appId}.`, { appId })
    if (app.status === 'retired')
      throw new DomainError('app.already_retired', `${app.name} was already retired.`, { name: app.name })
    let newCurrentAppId: number | null = null
    if (app.is_current === 1) {
      const candidates = await trx
        .selectFrom('oauth_apps')
        .select(['id', 'name'])
        .where('environment', '=', app.environment)
        .where('status', '=', 'active')
        .where('id', '!=', app.id)
        .execute()
      if (candidates.length === 0) {
        throw new DomainError('app.last_current', `${app.name} is the only active ${app.environment} app.`, {
          name: app.name,
          environment: app.environment,
        })
      }
      const chosen = options.newCurrentAppId
        ? candidates.find((c) => c.id === options.newCurrentAppId)
        : candidates.length === 1
          ? candidates[0]
          : undefined
      if (!chosen) {
        throw new DomainError('app.successor_needed', `${app.name} is current: name the app that takes over.`, {
          appId: app.id,
          name: app.name,
          environment: app.environment,
        })
      }
      await trx.updateTable('oauth_apps').set({ is_current: 1, updated_at: now }).where('id', '=', chosen.id).execute()
      newCurrentAppId = chosen.id
    }
    // The current app's successor is the app that takes over; any other app's is the operator's
    // choice, else (none chosen) the environment's current app.
    const successorId = newCurrentAppId ?? options.successorAppId ?? null
    const successor =
      successorId === null
        ? await trx
            .selectFrom('oauth_apps')
            .select(['id', 'status'])
            .where('environment', '=', app.environment)
            .where('is_current', '=', 1)
            .where('id', '!=', app.id)
            .executeTakeFirst()
        : await trx.selectFrom('oauth_apps').select(['id', 'status']).where('id', '=', successorId).executeTakeFirst()
    if (successorId !== null && (successor?.status !== 'active' || successor?.id === app.id))
      throw new DomainError('app.successor_invalid', `App ${successorId} cannot succeed ${app.name}.`, {
        appId: app.id,
        name: app.name,
      })
    await trx
      .updateTable('oauth_apps')
      .set({
        status: 'retired',
        is_current: 0,
        retired_at: now,
        updated_at: now,
        successor_app_id: successor?.id ?? null,
      })
      .where('id', '=', app.id)
      .execute()
    await recordAudit(trx, now, {
      type: 'app.retired',
      actor,
      appId: app.id,
      details: {
        key: app.key,
        environment: app.environment,
        wasCurrent: app.is_current === 1,
        newCurrentAppId,
        successorAppId: successor?.id ?? null,
      },
    })
    return { appId: app.id, newCurrentAppId }
  })
  // Membership of every user on the app, in batches of its own (may touch many users).
  await db.transaction().execute((trx) => syncUsersOnApp(trx, appId))
  return result
}

/** Names (or changes) the successor of a retired app: the active app its users reconnect with. */
export async function setSuccessor(
  db: Db,
  appId: number,
  successorAppId: number,
  options: { actor: string; now: number },
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const app = await trx
      .selectFrom('oauth_apps')
      .select(['id', 'name', 'status'])
      .where('id', '=', appId)
      .executeTakeFirst()
    if (!app) throw new DomainError('app.not_found', `There is no app ${appId}.`, { appId })
    const successor = await trx
      .selectFrom('oauth_apps')
      .select(['id', 'status'])
      .where('id', '=', successorAppId)
      .executeTakeFirst()
    if (app.status !== 'retired' || !successor || successor.status !== 'active' || successor.id === app.id)
      throw new DomainError('app.successor_invalid', `App ${successorAppId} cannot succeed ${app.name}.`, {
        appId,
        name: app.name,
      })
    await trx
      .updateTable('oauth_apps')
      .set({ successor_app_id: successor.id, updated_at: options.now })
      .where('id', '=', app.id)
      .execute()
    await recordAudit(trx, options.now, {
      type: 'app.successor_set',
      actor: options.actor,
      appId: app.id,
      details: { successorAppId: successor.id },
    })
  })
}
