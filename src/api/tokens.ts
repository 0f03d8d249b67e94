// A user's access token for the integrator's product (src/README.md, "API"): the currently valid
// token of the active grant, refreshed first through the one refresh path (grants/access.ts
// withAccessToken: single flight per grant in the process and across processes). Every token
// returned is audited, with the key that asked (never the token).
import { recordAudit } from '../audit/events.js'
import type { AppDeps } from '../deps.js'
import { DomainError, isDomainError } from '../errors.js'
import { withAccessToken } from '../grants/access.js'
import type { Logger } from '../log.js'
import { parseScopes } from '../scopes.js'
import type { ApiUser } from './users.js'

export interface ApiAccessToken {
  accessToken: string
  expiresAt: number | null
  scopes: string[]
}

/** Where a user whose grant ended connects again: the public connect page (the current app). */
export function reconnectUrl(publicUrl: string): string {
  return `${publicUrl}/carta/connect`
}

function reconnect(publicUrl: string, reason: string): DomainError<'api.reconnect_required'> {
  return new DomainError('api.reconnect_required', `The user must connect again: ${reason}.`, {
    reconnectUrl: reconnectUrl(publicUrl),
    reason,
  })
}

export async function accessTokenFor(
  deps: Pick<AppDeps, 'config' | 'db' | 'clock' | 'cipher' | 'refreshes'> & { log: Logger },
  user: ApiUser,
  actor: string,
): Promise<ApiAccessToken> {
  const grantId = user.activeGrantId
  if (grantId === null || user.grantStatus !== 'active')
    throw reconnect(deps.config.publicUrl, grantId === null ? 'no grant' : `grant ${user.grantStatus}`)
  let accessToken: string
  try {
    accessToken = await withAccessToken(deps, grantId, async (token) => token)
  } catch (err) {
    if (isDomainError(err, 'grant.reconnect_required')) throw reconnect(deps.config.publicUrl, err.details.reason)
    throw err
  }
  // Expiry and scopes as stored with this token (a refresh just now may have changed both).
  const row = await deps.db
    .selectFrom('grants')
    .leftJoin('grant_tokens', 'grant_tokens.grant_id', 'grants.id')
    .select(['grants.granted_scopes', 'grant_tokens.access_expires_at'])
    .where('grants.id', '=', grantId)
    .executeTakeFirstOrThrow()
  await recordAudit(deps.db, deps.clock.now(), {
    type: 'api.token_returned',
    actor,
    userId: user.id,
    grantId,
  })
  return {
    accessToken,
    expiresAt: row.access_expires_at === null ? null : Number(row.access_expires_at),
    scopes: parseScopes(row.granted_scopes),
  }
}
