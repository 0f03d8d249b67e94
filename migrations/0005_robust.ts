// Robustness: (1) tokens Carta issued that the ledger did not record (a refused callback) are
// queued for revocation like any other, so token_revocations.grant_id becomes optional; (2) rate
// limit counters live in the database, so every instance on one database counts the same hits.
import { type Kysely, PostgresAdapter, sql } from 'kysely'

function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

// The column list of token_revocations as 0001_core.ts created it, frozen here.
const REVOCATION_COLUMNS =
  'id, grant_id, app_id, key_id, token, token_type_hint, status, attempts, next_attempt_at, last_error, lock_until, created_at, done_at'

async function rebuildRevocationsSqlite(db: Kysely<any>, grantIdNullable: boolean): Promise<void> {
  // SQLite cannot change a column's NOT NULL: build the table anew and copy the rows over.
  await sql
    .raw(`create table token_revocations_new (
      id integer primary key autoincrement,
      grant_id integer ${grantIdNullable ? '' : 'not null '}references grants(id) on delete cascade,
      app_id integer not null references oauth_apps(id),
      key_id text not null,
      token text not null,
      token_type_hint text not null,
      status text not null default 'pending',
      attempts integer not null default 0,
      next_attempt_at bigint not null,
      last_error text,
      lock_until bigint,
      created_at bigint not null,
      done_at bigint
    )`)
    .execute(db)
  const where = grantIdNullable ? '' : ' where grant_id is not null'
  await sql
    .raw(
      `insert into token_revocations_new (${REVOCATION_COLUMNS}) select ${REVOCATION_COLUMNS} from token_revocations${where}`,
    )
    .execute(db)
  await sql.raw('drop table token_revocations').execute(db)
  await sql.raw('alter table token_revocations_new rename to token_revocations').execute(db)
  await db.schema
    .createIndex('token_revocations_due')
    .on('token_revocations')
    .columns(['status', 'next_attempt_at'])
    .execute()
  await db.schema.createIndex('token_revocations_grant').on('token_revocations').column('grant_id').execute()
}

export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) await sql`alter table token_revocations alter column grant_id drop not null`.execute(db)
  else await rebuildRevocationsSqlite(db, true)

  // One row per rate-limit key (route + client): hits in the current window and when it ends.
  await db.schema
    .createTable('rate_limit_hits')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addColumn('reset_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('rate_limit_hits_reset').on('rate_limit_hits').column('reset_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_limit_hits').execute()
  if (isPostgres(db)) {
    await sql`delete from token_revocations where grant_id is null`.execute(db)
    await sql`alter table token_revocations alter column grant_id set not null`.execute(db)
  } else await rebuildRevocationsSqlite(db, false)
}
