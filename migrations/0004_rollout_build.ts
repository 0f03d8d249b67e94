// Rollouts are measured in the background, in short chunks by end-user id (src/rollouts/build.ts),
// instead of one transaction over every user; members say why they need action; the user page
// lists a user's links across rollouts.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // build_status: 'building' until every user is measured and the counters recounted, then 'ready'.
  // build_cursor: the last end_users.id measured; build_done / build_total drive the progress notice.
  // build_lock_owner / build_lock_until: the lease that keeps two instances off the same chunk.
  const columns: Array<[string, 'text' | 'bigint', string | number | null]> = [
    ['build_status', 'text', 'ready'],
    ['build_cursor', 'bigint', 0],
    ['build_done', 'bigint', 0],
    ['build_total', 'bigint', 0],
    ['build_lock_owner', 'text', null],
    ['build_lock_until', 'bigint', null],
    ['built_at', 'bigint', null],
  ]
  for (const [name, type, fallback] of columns) {
    await db.schema
      .alterTable('rollouts')
      .addColumn(name, type, (c) => (fallback === null ? c : c.notNull().defaultTo(fallback)))
      .execute()
  }
  // missing_scopes | app_retired | no_active_grant | needs_reconnect. (authorized_at stays a
  // nullable column, but the membership code always writes it, so keyset paging by time is exact.)
  await db.schema.alterTable('rollout_members').addColumn('reason', 'text').execute()
  await db.schema.createIndex('reauth_links_user').on('reauth_links').columns(['user_id', 'id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('reauth_links_user').execute()
  await db.schema.alterTable('rollout_members').dropColumn('reason').execute()
  for (const name of [
    'built_at',
    'build_lock_until',
    'build_lock_owner',
    'build_total',
    'build_done',
    'build_cursor',
    'build_status',
  ]) {
    await db.schema.alterTable('rollouts').dropColumn(name).execute()
  }
}
