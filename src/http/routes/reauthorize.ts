// The page a reauthorization link opens (/reauthorize/<token>, no operator session) and its one
// button, which starts the Carta flow with the rollout's app (src/flows/reauthorize.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { linkAuthorization, linkPage } from '../../flows/reauthorize.js'
import { describeScopes } from '../../scopes.js'
import { isoDate } from '../../time.js'
import { sendToCarta } from '../authorize.js'
import { noStore, renderPage } from '../render.js'
import { Text } from '../schemas.js'

// Any token is looked at (and a refusal audited); resolveLink checks its shape and signature.
const TokenParams = Type.Object({ token: Text(1000) })

const reauthorize: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app.deps
  const oauthLimit = { rateLimit: { max: config.rateLimits.oauthPerMinute, timeWindow: '1 minute' } }

  app.get('/reauthorize/:token', { config: oauthLimit, schema: { params: TokenParams } }, async (request, reply) => {
    noStore(reply) // the token is in the page
    const page = await linkPage(app.deps, request.params.token, request.log)
    return renderPage(request, reply, 'reauthorize', {
      title: 'Update your Carta permissions',
      csrf: true,
      action: `/reauthorize/${request.params.token}`,
      rolloutName: page.rolloutName,
      added: describeScopes(page.added),
      kept: describeScopes(page.kept),
      expiresOn: isoDate(page.expiresAt),
    })
  })

  app.post(
    '/reauthorize/:token',
    { config: oauthLimit, preHandler: app.csrfProtection, schema: { params: TokenParams } },
    async (request, reply) =>
      // The callback consumes the link and checks the returning identity (src/flows/connect.ts).
      sendToCarta(request, reply, await linkAuthorization(app.deps, request.params.token, request.log)),
  )
}

export default reauthorize
