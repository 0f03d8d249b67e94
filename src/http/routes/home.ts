// The end user's home page: what Scope Ledger does and a Connect button, or, once connected,
// who they are, which app, the scopes Carta granted and the issuers those scopes let us read.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { listApps } from '../../apps/apps.js'
import { homeGrant, issuersForGrant } from '../../grants/queries.js'
import { rolloutsAsking } from '../../links/prompt.js'
import { describeScopes } from '../../scopes.js'
import { renderPage } from '../render.js'

const home: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db } = app.deps

  // ?reauthorized=1: back from a reauthorization link (src/http/routes/reauthorize.ts).
  const schema = { querystring: Type.Object({ reauthorized: Type.Optional(Type.Enum(['1'])) }) }
  app.get('/', { schema }, async (request, reply) => {
    const apps = (await listApps(db)).filter((a) => a.status === 'active' && config.apps.some((c) => c.key === a.key))
    const userId = request.session.endUserId
    const home = userId ? await homeGrant(db, userId) : undefined
    const connected = home?.grant?.status === 'active' && home.userStatus === 'connected'
    const issuers = connected ? await issuersForGrant({ ...app.deps, log: request.log }, home.grant!) : null
    // Rollouts asking this person for more (dismissible per browser session).
    const asking = connected && userId ? await rolloutsAsking(db, userId, request.session.dismissedPrompts ?? []) : []
    return renderPage(request, reply, 'home', {
      title: connected ? 'Your Carta connection' : 'Connect Carta',
      csrf: asking.length > 0,
      asking: asking.map((a) => ({ ...a, permissions: describeScopes(a.missing) })),
      home: home ?? null,
      connected,
      issuers,
      apps: apps.map((a) => ({ key: a.key, name: a.name, environment: a.environment, current: a.is_current === 1 })),
      defaultEnvironment: config.defaultEnvironment,
      // Back from a reauthorization link: say it worked (the new grant is shown below it).
      justReauthorized: connected && request.query.reauthorized === '1',
      // Plain words for each scope: end users read permissions, not scope ids.
      describeScopes,
    })
  })
}

export default home
