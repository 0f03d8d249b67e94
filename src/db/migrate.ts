// Applies the files in migrations/ in name order. Schema changes only ever add a new file.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type Migration, type MigrationProvider, type MigrationResultSet, Migrator } from 'kysely'
import { projectRoot } from '../config.js'
import { currentSchema } from './dialect.js'
import type { Db } from './index.js'

export const migrationsDir = join(projectRoot, 'migrations')

class DirectoryMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(migrationsDir)).filter((f) => /^\d{4}_[a-z0-9_]+\.ts$/.test(f)).sort()
    const migrations: Record<string, Migration> = {}
    for (const file of files) {
      migrations[file.replace(/\.ts$/, '')] = (await import(pathToFileURL(join(migrationsDir, file)).href)) as Migration
    }
    return migrations
  }
}

export class MigrationError extends Error {
  override name = 'MigrationError'
}

/** Migrates to the latest schema; throws MigrationError naming the failed migration. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  // On PostgreSQL, Kysely looks for its bookkeeping tables in EVERY schema unless told which one;
  // with several schemas on one database (a test app each, or a staging copy) it would find
  // another schema's table, skip creating its own, and fail. Pin it to ours.
  const migrationTableSchema = await currentSchema(db).catch((err: Error) => {
    throw new MigrationError(`Migrations cannot start: ${err.message}`)
  })
  const migrator = new Migrator({
    db,
    provider: new DirectoryMigrationProvider(),
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  })
  const result = await migrator.migrateToLatest()
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? '(before any migration ran)'
    throw new MigrationError(`Migration ${failed} failed: ${(result.error as Error).message ?? result.error}`)
  }
  return result
}
