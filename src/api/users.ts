// What the integrator's product may ask about one end user (src/README.md, "API"): identity, the
// active grant's app and scopes (as the ledger holds them, with their source), and each active
// rollout the user is in. Two indexed reads: the user with their active grant and app, then the
// memberships by the rollout_members primary key (rollout_id, user_id) over the active rollouts.
import type { Db } from '../db/index.js'
import { preparedQuery } from '../db/prepared.js'
import { DomainError } from '../errors.js'
import { parseScopes } from '../scopes.js'

export interface ApiUser {
  /** The ledger's own id (not part of the API's answer; used to issue links and read tokens). */
  id: number
  cartaUserId: string | null
  externalUserId: string | null
  email: string | null
  name: string | null
  status: 'connected' | 'needs_reconnect'
  activeGrantId: number | null
  grantStatus: string | null
  app: { key: string; clientId: string } | null
  grantedScopes: string[]
  /** As the grant row holds it: reported, assumed, or any other source the ledger records. */
  scopesSource: string | null
  rollouts: Array<{ id: number; name: string; covered: boolean; missingScopes: string[] }>
}

export type UserRef = { cartaUserId: string } | { externalUserId: string }

const userQuery = (db: Db, column: 'u.carta_user_id' | 'u.external_user_id', value: string) =>
  db
    .selectFrom('end_users as u')
    .leftJoin('grants as g', 'g.id', 'u.active_grant_id')
    .leftJoin('oauth_apps as a', 'a.id', 'g.app_id')
    .select([
      'u.id',
      'u.carta_user_id',
      'u.external_user_id',
      'u.email',
      'u.name',
      'u.status',
      'u.active_grant_id',
      'g.status as grant_status',
      'g.granted_scopes',
      'g.scopes_source',
      'a.key as app_key',
      'a.client_id',
    ])
    .where(column, '=', value)

// Every API request for a user runs these (compiled once, db/prepared.ts).
const userByCartaId = preparedQuery((db: Db, id: string) => userQuery(db, 'u.carta_user_id', id))
const userByExternalId = preparedQuery((db: Db, id: string) => userQuery(db, 'u.external_user_id', id))
const membershipsOf = preparedQuery((db: Db, userId: number) =>
  db
    .selectFrom('rollout_members as m')
    .innerJoin('rollouts as r', 'r.id', 'm.rollout_id')
    .select(['r.id', 'r.name', 'm.state', 'm.missing_scopes'])
    .where('m.user_id', '=', userId)
    .where('r.status', '=', 'active')
    .orderBy('r.id'),
)

/** `rollouts: false` skips the memberships read (the access-token route needs only the grant). */
export async function findApiUser(db: Db, ref: UserRef, options: { rollouts?: boolean } = {}): Promise<ApiUser> {
  const [row] =
    'cartaUserId' in ref ? await userByCartaId(db, ref.cartaUserId) : await userByExternalId(db, ref.externalUserId)
  if (!row) throw new DomainError('api.user_not_found', 'There is no such end user.', {})
  const members = options.rollouts === false ? [] : await membershipsOf(db, row.id)
  return {
    id: row.id,
    cartaUserId: row.carta_user_id,
    externalUserId: row.external_user_id,
    email: row.email,
    name: row.name,
    status: row.status,
    activeGrantId: row.active_grant_id,
    grantStatus: row.grant_status ?? null,
    app: row.app_key && row.client_id ? { key: row.app_key, clientId: row.client_id } : null,
    grantedScopes: row.granted_scopes ? parseScopes(row.granted_scopes) : [],
    scopesSource: row.scopes_source ?? null,
    rollouts: members.map((m) => ({
      id: m.id,
      name: m.name,
      covered: m.state === 'covered',
      missingScopes: parseScopes(m.missing_scopes),
    })),
  }
}
