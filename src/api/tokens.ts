// A user's access token for the integrator's product (src/README.md, "API"): the currently valid
// token of the active grant, refreshed first through the one refresh path (grants/access.ts
// withAccessToken: single flight per grant in the process and across processes). Every token
// returned is audited, with the key that asked (never the token).
import { recordAudit } from '../audit/events.js'
import type { AppDeps } from '../deps.js'
import { DomainError, isDomainError } from '../errors.js'
import { withAccessToken } from '../grants/access.js'
import type { StoredTokens } from '../grants/tokens.js'
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
  let used: { tokens: StoredTokens; refreshed: boolean }
  try {
    used = await withAccessToken(deps, grantId, async (_token, _ctx, current) => current)
  } catch (err) {
    if (isDomainError(err, 'grant.reconnect_required')) throw reconnect(deps.config.publicUrl, err.details.reason)
    throw err
  }
  // A token that needed no refresh carries the scopes the caller just read with the user; a
  // refresh may have changed them (Carta reports the scopes of the refreshed token): read again.
  let scopes = user.grantedScopes
  if (used.refreshed) {
    const row = await deps.db
      .selectFrom('grants')
      .select(['granted_scopes'])
      .where('id', '=', grantId)
      .executeTakeFirstOrThrow()
    scopes = parseScopes(row.granted_scopes)
  }
  await recordAudit(deps.db, deps.clock.now(), {
    type: 'api.token_returned',
    actor,
    userId: user.id,
    grantId,
  })
  return { accessToken: used.tokens.accessToken, expiresAt: used.tokens.expiresAt, scopes }
}
