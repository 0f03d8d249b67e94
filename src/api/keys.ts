// API keys of the integrator's product (src/README.md, "API"): 256 random bits shown once, stored
// as their SHA-256 (a fast hash is enough for a key this long), with a set of permissions, a name,
// when they were last used, and revocation. Sent as `Authorization: Bearer <key>` (RFC 6750 §2.1).
import { createHash, randomBytes } from 'node:crypto'
import type { Selectable } from 'kysely'
import { recordAudit } from '../audit/events.js'
import type { Db } from '../db/index.js'
import { preparedQuery } from '../db/prepared.js'
import { DomainError } from '../errors.js'
import type { ApiKeyTable } from './tables.js'

export const API_PERMISSIONS = ['read', 'tokens', 'links', 'connect'] as const
export type ApiPermission = (typeof API_PERMISSIONS)[number]

/** Recognisable in a leaked file or a secret scanner, like `whsec_` for webhook secrets. */
export const KEY_PREFIX = 'slk_'
const KEY_SHAPE = /^slk_[A-Za-z0-9_-]{43}$/
/** last_used_at is written at most this often per key: a write per request would cost every request. */
const LAST_USED_GRANULARITY_MS = 60_000

export type ApiKeyRow = Selectable<ApiKeyTable>

export interface ApiKeyInfo {
  id: number
  name: string
  prefix: string
  permissions: ApiPermission[]
  createdBy: string
  createdAt: number
  lastUsedAt: number | null
  revokedAt: number | null
}

/** The identity a request authenticated as. */
export interface ApiCaller {
  keyId: number
  name: string
  permissions: ApiPermission[]
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

export function parsePermissions(value: string): ApiPermission[] {
  const out: ApiPermission[] = []
  for (const item of value.split(/[\s,]+/).filter(Boolean)) {
    if (!(API_PERMISSIONS as readonly string[]).includes(item))
      throw new DomainError('api_key.invalid', `Unknown permission "${item.slice(0, 40)}".`, {})
    if (!out.includes(item as ApiPermission)) out.push(item as ApiPermission)
  }
  return API_PERMISSIONS.filter((p) => out.includes(p))
}

function info(row: ApiKeyRow): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    permissions: parsePermissions(row.permissions),
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  }
}

/** Creates a key; the key itself is in the result only (never stored, never logged). */
export async function createApiKey(
  db: Db,
  input: { name: string; permissions: ApiPermission[]; actor: string },
  now: number,
): Promise<{ key: string; info: ApiKeyInfo }> {
  const name = input.name.trim()
  if (!name || name.length > 100 || [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f))
    throw new DomainError('api_key.invalid', 'A key needs a name of 1 to 100 printable characters.', {})
  if (input.permissions.length === 0)
    throw new DomainError('api_key.invalid', 'A key needs at least one permission.', {})
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`
  const permissions = API_PERMISSIONS.filter((p) => input.permissions.includes(p))
  const row = await db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('api_keys')
      .values({
        name,
        prefix: key.slice(0, KEY_PREFIX.length + 6),
        key_hash: hashKey(key),
        permissions: permissions.join(' '),
        created_by: input.actor,
        created_at: now,
        last_used_at: null,
        revoked_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow()
    await recordAudit(trx, now, {
      type: 'api_key.created',
      actor: input.actor,
      details: { keyId: inserted.id, name, permissions },
    })
    return inserted
  })
  return { key, info: info(row) }
}

export async function listApiKeys(db: Db): Promise<ApiKeyInfo[]> {
  const rows = await db.selectFrom('api_keys').selectAll().orderBy('id', 'desc').execute()
  return rows.map(info)
}

/** Revokes a key (immediately: every request checks the row). False when it was already revoked. */
export async function revokeApiKey(db: Db, keyId: number, actor: string, now: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('api_keys').select(['id', 'name']).where('id', '=', keyId).executeTakeFirst()
    if (!row) throw new DomainError('api_key.not_found', `There is no API key ${keyId}.`, { keyId })
    const result = await trx
      .updateTable('api_keys')
      .set({ revoked_at: now })
      .where('id', '=', keyId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst()
    if (Number(result.numUpdatedRows) !== 1) return false
    await recordAudit(trx, now, { type: 'api_key.revoked', actor, details: { keyId, name: row.name } })
    return true
  })
}

// Every API request runs it (compiled once, db/prepared.ts).
const keyByHash = preparedQuery((db: Db, hash: string) =>
  db
    .selectFrom('api_keys')
    .select(['id', 'name', 'permissions', 'last_used_at', 'revoked_at'])
    .where('key_hash', '=', hash),
)

/** The caller a bearer key names, or null when it is malformed, unknown or revoked. */
export async function authenticateKey(db: Db, key: string, now: number): Promise<ApiCaller | null> {
  if (!KEY_SHAPE.test(key)) return null
  const [row] = await keyByHash(db, hashKey(key))
  if (!row || row.revoked_at !== null) return null
  if (row.last_used_at === null || now - Number(row.last_used_at) >= LAST_USED_GRANULARITY_MS) {
    await db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', row.id).execute()
  }
  return { keyId: row.id, name: row.name, permissions: parsePermissions(row.permissions) }
}

export function keyActor(caller: Pick<ApiCaller, 'keyId'>): string {
  return `api_key:${caller.keyId}`
}
