// Start-up shared by the server and the CLI: config → database → migrations → declared apps.
import { systemClock } from './clock.js'
import { type Config, loadConfig } from './config.js'
import { syncApps } from './apps/apps.js'
import { type Db, openDatabase } from './db/index.js'
import { migrateToLatest } from './db/migrate.js'

export interface Runtime {
  config: Config
  db: Db
}

/** Loads config and opens a migrated database; throws ConfigError / DatabaseUnavailableError / MigrationError. */
export async function openRuntime(env: Record<string, string | undefined> = process.env): Promise<Runtime> {
  const config = loadConfig(env)
  const db = await openDatabase(config.database)
  try {
    await migrateToLatest(db)
    await syncApps(db, config.apps, systemClock.now())
  } catch (err) {
    await db.destroy()
    throw err
  }
  return { config, db }
}
