// Applies the files in migrations/ in name order (Kysely's FileMigrationProvider). Schema changes
// only ever add a new file; a migration never imports application code (it is frozen in time).
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, type MigrationResultSet, Migrator } from 'kysely'
import { currentSchema } from './dialect.js'
import type { Db } from './index.js'

/** migrations/ beside this code: the .ts files under tsx, their compiled .js under dist/. */
export const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url))

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
    provider: new FileMigrationProvider({ fs, path, migrationFolder: migrationsDir }),
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  })
  const result = await migrator.migrateToLatest()
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? '(before any migration ran)'
    throw new MigrationError(`Migration ${failed} failed: ${(result.error as Error).message ?? result.error}`)
  }
  return result
}

/** Names of migrations in migrations/ not yet applied to this database (readiness: /readyz). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const migrationTableSchema = await currentSchema(db)
  const migrator = new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: migrationsDir }),
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  })
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name)
}
