// Operator roles, single sign-on identities and disabled accounts (src/README.md, "Data model").
// Accounts that existed before roles held every power, so they become admins. An account that
// signs in only through the identity provider keeps the placeholder password hash '!', which no
// password matches (src/admin/passwords.ts refuses hashes that are not scrypt$…).
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // viewer | operator | admin
  await db.schema
    .alterTable('operators')
    .addColumn('role', 'text', (c) => c.notNull().defaultTo('admin'))
    .execute()
  for (const [name, type] of [
    ['disabled_at', 'bigint'],
    ['email', 'text'],
    ['oidc_issuer', 'text'],
    ['oidc_subject', 'text'],
  ] as const) {
    await db.schema.alterTable('operators').addColumn(name, type).execute()
  }
  // One account per identity at the provider (OpenID Connect Core §5.7: iss + sub is the key).
  await db.schema
    .createIndex('operators_oidc_identity')
    .on('operators')
    .columns(['oidc_issuer', 'oidc_subject'])
    .unique()
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('operators_oidc_identity').execute()
  for (const name of ['oidc_subject', 'oidc_issuer', 'email', 'disabled_at', 'role']) {
    await db.schema.alterTable('operators').dropColumn(name).execute()
  }
}
