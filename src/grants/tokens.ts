// The token store: a grant's access and refresh token, encrypted with AES-256-GCM (TokenCipher),
// never in clear in the database, a log, a page or a cookie (src/README.md, "Non-negotiables").
import type { Kysely, Transaction } from 'kysely'
import type { TokenSet } from '../carta/oauth-client.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import type { TokenCipher } from './token-cipher.js'

export interface StoredTokens {
  accessToken: string
  refreshToken: string | null
  expiresAt: number | null
  tokenType: string
  /** Bumped on every write; the refresh path uses it as an optimistic-lock guard. */
  version: number
  keyId: string
}

/**
 * Stores (or replaces, after a refresh) the tokens of a grant. Both values are sealed with the
 * current key; the key id is kept beside them so rotated keys keep decrypting.
 */
export async function storeTokens(
  db: Transaction<Database>,
  cipher: TokenCipher,
  grantId: number,
  tokens: TokenSet,
  now: number,
): Promise<void> {
  const { grant_id: _, ...values } = sealedTokenRow(cipher, grantId, tokens, now)
  await db
    .insertInto('grant_tokens')
    .values({ grant_id: grantId, ...values })
    .onConflict((oc) =>
      oc
        .column('grant_id')
        .doUpdateSet((eb) => ({ ...values, version: eb('grant_tokens.version', '+', 1), refreshed_at: now })),
    )
    .execute()
}

const tokensQuery = (db: Kysely<Database>, grantId: number) =>
  db
    .selectFrom('grant_tokens')
    .select(['key_id', 'access_token', 'refresh_token', 'token_type', 'access_expires_at', 'version'])
    .where('grant_id', '=', grantId)
// Every use of a token reads it (the API's access-token route on each call): compiled once (db/prepared.ts).
const preparedTokens = preparedQuery(tokensQuery)

/** The grant_tokens row of a new grant's tokens (storeTokens, and the import's batch insert). */
export function sealedTokenRow(cipher: TokenCipher, grantId: number, tokens: TokenSet, now: number) {
  const access = cipher.seal(tokens.accessToken)
  const refresh = tokens.refreshToken ? cipher.seal(tokens.refreshToken, access.keyId) : null
  return {
    grant_id: grantId,
    key_id: access.keyId,
    access_token: access.value,
    refresh_token: refresh?.value ?? null,
    token_type: tokens.tokenType,
    access_expires_at: tokens.expiresAt,
    updated_at: now,
  }
}

/** Decrypts a grant's tokens; undefined when the grant has none (revoked or superseded). */
export async function readTokens(
  db: Kysely<Database>,
  cipher: TokenCipher,
  grantId: number,
): Promise<StoredTokens | undefined> {
  const [row] = db.isTransaction ? await tokensQuery(db, grantId).execute() : await preparedTokens(db, grantId)
  if (!row) return undefined
  return {
    accessToken: cipher.open({ keyId: row.key_id, value: row.access_token }),
    refreshToken: row.refresh_token === null ? null : cipher.open({ keyId: row.key_id, value: row.refresh_token }),
    expiresAt: row.access_expires_at,
    tokenType: row.token_type,
    version: row.version,
    keyId: row.key_id,
  }
}
