// An app's successor (where the users of a retired app are sent when they reconnect), and the
// indexes of the operator's Users page: case-insensitive beginnings of email and name, each with
// the id for keyset pages (src/README.md, "Scale"). Expression indexes are portable between
// SQLite and PostgreSQL; the queries use the same lower(...) expressions.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('oauth_apps')
    .addColumn('successor_app_id', 'integer', (c) => c.references('oauth_apps.id'))
    .execute()
  await sql`create index end_users_email_lower on end_users (lower(email), id)`.execute(db)
  await sql`create index end_users_name_lower on end_users (lower(name), id)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('end_users_name_lower').execute()
  await db.schema.dropIndex('end_users_email_lower').execute()
  await db.schema.alterTable('oauth_apps').dropColumn('successor_app_id').execute()
}
