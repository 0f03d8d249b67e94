// Carta OAuth apps: declared in the apps file, mirrored into oauth_apps so grants and rollouts
// can reference them. Secrets stay in the environment (config), never in the database.
import type { Selectable } from 'kysely'
import type { CartaAppConfig, CartaEnvironment } from '../config.js'
import type { Db } from '../db/index.js'
import type { OAuthAppTable } from '../db/schema.js'
import { formatScopes, parseScopes } from '../scopes.js'

export type AppRow = Selectable<OAuthAppTable>

/**
 * Upserts the declared apps. A retirement recorded in the database (by an operator) is kept
 * even if the file still says active: retiring is one-way. The file names each environment's
 * current app, except when that app was retired here: then the successor the operator chose
 * stays current until the file is updated. Apps in the database but no longer in the file are
 * left as they are (their grants still reference them).
 */
export async function syncApps(db: Db, apps: CartaAppConfig[], now: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const stored = await trx
      .selectFrom('oauth_apps')
      .select(['id', 'key', 'status', 'environment', 'is_current'])
      .execute()
    const retiredKeys = new Set(stored.filter((a) => a.status === 'retired').map((a) => a.key))
    // Environments whose declared current app an operator has retired keep the database's choice.
    const keepStoredCurrent = new Set(apps.filter((a) => a.current && retiredKeys.has(a.key)).map((a) => a.environment))
    for (const app of apps) {
      const existing = stored.find((a) => a.key === app.key)
      const status = existing?.status === 'retired' ? 'retired' : app.status
      const declaredCurrent = keepStoredCurrent.has(app.environment) ? existing?.is_current === 1 : app.current
      const values = {
        name: app.name,
        environment: app.environment,
        client_id: app.clientId,
        auth_base_url: app.authBaseUrl,
        api_base_url: app.apiBaseUrl,
        scopes: formatScopes(app.scopes),
        status,
        is_current: declaredCurrent && status === 'active' ? 1 : 0,
        updated_at: now,
      }
      if (existing) {
        const newlyRetired = status === 'retired' && existing.status !== 'retired'
        await trx
          .updateTable('oauth_apps')
          .set({ ...values, ...(newlyRetired ? { retired_at: now } : {}) })
          .where('id', '=', existing.id)
          .execute()
      } else {
        // Two instances starting at once on an empty database both insert: the first one wins,
        // and the other's row would be identical (same apps file).
        await trx
          .insertInto('oauth_apps')
          .values({ key: app.key, created_at: now, retired_at: status === 'retired' ? now : null, ...values })
          .onConflict((oc) => oc.doNothing()) // any unique key: key and client_id race alike
          .execute()
      }
    }
  })
}

export async function findAppByKey(db: Db, key: string): Promise<AppRow | undefined> {
  return db.selectFrom('oauth_apps').selectAll().where('key', '=', key).executeTakeFirst()
}

export async function findAppById(db: Db, id: number): Promise<AppRow | undefined> {
  return db.selectFrom('oauth_apps').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function listApps(db: Db): Promise<AppRow[]> {
  return db.selectFrom('oauth_apps').selectAll().orderBy('environment').orderBy('id').execute()
}

/** The app new connections use in an environment (active and marked current). */
export async function currentApp(db: Db, environment: CartaEnvironment): Promise<AppRow | undefined> {
  return db
    .selectFrom('oauth_apps')
    .selectAll()
    .where('environment', '=', environment)
    .where('is_current', '=', 1)
    .where('status', '=', 'active')
    .executeTakeFirst()
}

export function appScopes(app: Pick<AppRow, 'scopes'>): string[] {
  return parseScopes(app.scopes)
}

/** The declared config (client secret included) for a stored app; undefined if no longer declared. */
export function appConfigFor(apps: CartaAppConfig[], app: Pick<AppRow, 'key'>): CartaAppConfig | undefined {
  return apps.find((a) => a.key === app.key)
}
