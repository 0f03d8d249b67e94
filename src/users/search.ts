// The operator's Users page: every end user, found by the beginning of their email or name (case
// does not matter) or of their Carta user id, with their grant status. Keyset pages in the order of
// the searched column (then id), each on its own index (migrations/0006_answers.ts and the unique
// carta_user_id), so a page costs the same at 1,000,000 users (src/README.md, "Scale").
import { type Expression, type SqlBool, sql } from 'kysely'
import type { Db } from '../db/index.js'

export type UserSearchBy = 'email' | 'name' | 'carta'

export interface UserListRow {
  id: number
  email: string | null
  name: string | null
  cartaUserId: string | null
  /** connected (an active grant), reconnect (broken or revoked), or none (never completed). */
  state: 'connected' | 'reconnect' | 'none'
  grantStatus: string | null
  appName: string | null
  authorizedAt: number | null
}

export interface UserCursor {
  key: string
  id: number
}

// Strings compare byte by byte on both engines (SQLite BINARY; PostgreSQL with the C collation the
// README asks for), so [q, q + U+FFFF) holds every value that starts with q.
const UPPER = '\uffff'

export async function searchUsers(
  db: Db,
  options: { q?: string; by: UserSearchBy; after?: UserCursor | null; limit: number },
): Promise<{ rows: UserListRow[]; next: UserCursor | null }> {
  const q = options.q ?? ''
  const column =
    options.by === 'carta'
      ? sql<string>`u.carta_user_id`
      : options.by === 'name'
        ? sql<string>`lower(u.name)`
        : sql<string>`lower(u.email)`
  const needle = options.by === 'carta' ? q : q.toLowerCase()
  const searching = q !== ''
  let query = db
    .selectFrom('end_users as u')
    .leftJoin('grants as g', 'g.id', 'u.active_grant_id')
    .leftJoin('oauth_apps as a', 'a.id', 'g.app_id')
    .select([
      'u.id',
      'u.email',
      'u.name',
      'u.carta_user_id',
      'u.status',
      'g.status as grant_status',
      'g.created_at as grant_at',
      'a.name as app_name',
      column.as('sort_key'),
    ])
  const after = options.after
  if (searching) {
    query = query.where(column, '>=', needle).where(column, '<', needle + UPPER)
    if (after)
      query = query.where(
        (eb) =>
          eb.or([
            eb(column, '>', after.key),
            eb.and([eb(column, '=', after.key), eb('u.id', '>', after.id)]),
          ]) as Expression<SqlBool>,
      )
    query = query.orderBy(column).orderBy('u.id')
  } else {
    if (after) query = query.where('u.id', '>', after.id)
    query = query.orderBy('u.id')
  }
  const found = await query.limit(options.limit + 1).execute()
  const page = found.slice(0, options.limit)
  const last = page.at(-1)
  return {
    rows: page.map((r) => ({
      id: r.id,
      email: r.email,
      name: r.name,
      cartaUserId: r.carta_user_id,
      state:
        r.status === 'needs_reconnect' || (r.grant_status !== null && r.grant_status !== 'active')
          ? 'reconnect'
          : r.grant_status === 'active'
            ? 'connected'
            : 'none',
      grantStatus: r.grant_status,
      appName: r.app_name,
      authorizedAt: r.grant_at === null ? null : Number(r.grant_at),
    })),
    next:
      found.length > options.limit && last ? { key: searching ? String(last.sort_key ?? '') : '', id: last.id } : null,
  }
}

export function encodeUserCursor(c: UserCursor): string {
  return Buffer.from(JSON.stringify([c.key, c.id])).toString('base64url')
}

export function decodeUserCursor(value: string): UserCursor | null {
  try {
    const [key, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as unknown[]
    if (typeof key !== 'string' || !Number.isSafeInteger(id) || (id as number) < 0 || (id as number) > 2_147_483_647)
      return null
    return { key, id: id as number }
  } catch {
    return null
  }
}
