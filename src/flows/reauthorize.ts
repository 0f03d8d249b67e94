// The reauthorize flow (src/README.md, "Flows"): a person follows a reauthorization link; its page
// names the permissions the rollout asks for; its button starts the connect flow (connect.ts) with
// the rollout's app and scopes, bound to the link and its user, who must come back as the same
// Carta identity. Every refusal (tampered, expired, used, archived, app unavailable) is audited
// and logged without the token.
import { type AppRow, appConfigFor, appScopes, findAppById } from '../apps/apps.js'
import { recordAudit } from '../audit/events.js'
import type { AppDeps } from '../deps.js'
import { DomainError } from '../errors.js'
import { heldScopes } from '../grants/queries.js'
import { type LinkRow, markLinkContinued, markLinkOpened, resolveLink } from '../links/links.js'
import type { Logger } from '../log.js'
import { missingScopes } from '../scopes.js'
import type { StartOptions } from './connect.js'

type Deps = Pick<AppDeps, 'config' | 'db' | 'clock'>

type Refusal = 'tampered' | 'expired' | 'used' | 'archived' | 'revoked' | 'app_unavailable'

interface Visit {
  link: LinkRow
  rollout: { id: number; name: string; app_id: number }
  app: AppRow
}

/** What the link's page shows: the rollout, and the permissions the person adds and keeps. */
export async function linkPage(
  deps: Deps,
  token: string,
  log: Logger,
): Promise<{ rolloutName: string; added: string[]; kept: string[]; expiresAt: number }> {
  const { link, rollout, app } = await follow(deps, token, 'GET', log)
  // The funnel's "opened": the page was viewed (src/README.md, "Email").
  await markLinkOpened(deps.db, link.id, deps.clock.now())
  const requested = appScopes(app)
  const added = missingScopes(requested, await heldScopes(deps.db, link.user_id))
  return {
    rolloutName: rollout.name,
    added,
    kept: requested.filter((s) => !added.includes(s)),
    expiresAt: link.expires_at,
  }
}

/** How the link's button starts the connect flow: the rollout's app with all its scopes, for the link's user. */
export async function linkAuthorization(
  deps: Deps,
  token: string,
  log: Logger,
): Promise<Omit<StartOptions, 'sessionId'>> {
  const { link, rollout, app } = await follow(deps, token, 'POST', log)
  if (app.status !== 'active' || !appConfigFor(deps.config.apps, app))
    return refuse(deps, log, 'app_unavailable', 'POST', link)
  log.info({ linkId: link.id, rolloutId: rollout.id }, 'reauthorization link followed')
  await markLinkContinued(deps.db, link.id, deps.clock.now())
  return {
    app,
    scopes: appScopes(app),
    linkId: link.id,
    expectedUserId: link.user_id,
    returnTo: '/?reauthorized=1',
  }
}

/** The link behind a token, or a refusal. */
async function follow(deps: Deps, token: string, method: string, log: Logger): Promise<Visit> {
  const resolved = await resolveLink(deps.db, deps.config.linkSigningSecret, token, deps.clock.now())
  if (!resolved.ok)
    return resolved.reason === 'tampered'
      ? refuse(deps, log, 'tampered', method, null, resolved.linkId)
      : refuse(deps, log, resolved.reason, method, resolved.link)
  const app = await findAppById(deps.db, resolved.rollout.app_id)
  if (!app) throw new Error(`the app of rollout ${resolved.rollout.id} is missing`)
  return { link: resolved.link, rollout: resolved.rollout, app }
}

async function refuse(
  deps: Deps,
  log: Logger,
  reason: Refusal,
  method: string,
  link: LinkRow | null,
  claimedId: number | null = null,
): Promise<never> {
  await recordAudit(deps.db, deps.clock.now(), {
    type: 'link.rejected',
    actor: 'anonymous',
    userId: link?.user_id ?? null,
    rolloutId: link?.rollout_id ?? null,
    details: { reason, linkId: link?.id ?? claimedId, method },
  })
  log.warn({ reason, linkId: link?.id ?? claimedId }, 'reauthorization link refused')
  switch (reason) {
    case 'tampered':
      throw new DomainError('link.tampered', 'The link token is malformed or its signature is wrong.', {})
    case 'expired':
      throw new DomainError('link.expired', 'The link has expired.', { ttlDays: deps.config.linkTtlDays })
    case 'used':
      throw new DomainError('link.used', 'The link was already used.', {})
    case 'archived':
      throw new DomainError('link.archived', "The link's rollout is archived.", {})
    case 'revoked':
      throw new DomainError('link.revoked', 'An operator revoked the link.', {})
    case 'app_unavailable':
      throw new DomainError('link.app_unavailable', "The link's app accepts no connections.", {})
  }
}
