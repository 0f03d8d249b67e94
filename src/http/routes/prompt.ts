// The prompt on the home page for a connected person who lacks an active rollout's scopes: its
// button issues (or reuses) their link and opens it, exactly as an emailed link would; "Not now"
// hides it for this browser session.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DomainError } from '../../errors.js'
import { issueLink, linkContextFrom } from '../../links/links.js'
import { rolloutsAsking } from '../../links/prompt.js'
import { IdParams } from '../schemas.js'

const prompt: FastifyPluginAsyncTypebox = async (app) => {
  const { config, db, clock } = app.deps
  const context = linkContextFrom(config, clock)
  const csrf = { preHandler: app.csrfProtection }

  app.post('/prompt/:id', { ...csrf, schema: { params: IdParams } }, async (request, reply) => {
    const userId = request.session.endUserId
    const asking = userId ? await rolloutsAsking(db, userId) : []
    if (!userId || !asking.some((a) => a.rolloutId === request.params.id)) {
      request.log.warn({ rolloutId: request.params.id }, 'prompt refused: not a lacking member')
      throw new DomainError('link.not_found', 'Nothing to update for this person in this rollout.', {})
    }
    const issued = await issueLink(db, context, { rolloutId: request.params.id, userId, issuedBy: `user:${userId}` })
    request.log.info({ rolloutId: request.params.id, userId, reused: issued.reused }, 'link opened from the prompt')
    return reply.redirect(new URL(issued.url).pathname, 303)
  })

  app.post('/prompt/:id/dismiss', { ...csrf, schema: { params: IdParams } }, async (request, reply) => {
    const dismissed = new Set(request.session.dismissedPrompts ?? [])
    dismissed.add(request.params.id)
    request.session.dismissedPrompts = [...dismissed].slice(-50)
    return reply.redirect('/', 303)
  })
}

export default prompt
