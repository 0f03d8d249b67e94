// Public email routes: the opt-out a message's List-Unsubscribe header points to (RFC 8058
// one-click POST, and a page with a button for a person who opens it in a browser), and, in
// development without SMTP_URL, the local mailbox at /sandbox/mail (src/README.md, "Email").
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { DomainError } from '../../errors.js'
import { optOut, verifyUnsubscribeToken } from '../../mail/opt-out.js'
import { readMailbox, readMailboxEntry } from '../../mail/transport.js'
import { renderPage } from '../render.js'
import { Matching, Text } from '../schemas.js'

const TokenParams = Type.Object({ token: Text(200) })

const mail: FastifyPluginAsyncTypebox = async (app) => {
  const { db, clock, config } = app.deps
  // RFC 8058 §3.2: the one-click POST body may come as multipart/form-data; its content is fixed
  // ("List-Unsubscribe=One-Click") and the signed URL alone decides, so the body is not read.
  app.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: 10_000 }, (_req, _body, done) =>
    done(null, {}),
  )

  const userFrom = (token: string, log: { warn: (o: object, m: string) => void }) => {
    const userId = verifyUnsubscribeToken(config.linkSigningSecret, token)
    if (userId === null) {
      log.warn({ reason: 'bad signature or shape' }, 'unsubscribe link refused')
      throw new DomainError('mail.bad_unsubscribe', 'The unsubscribe token is malformed or its signature is wrong.', {})
    }
    return userId
  }

  // A GET never opts out: link scanners and previews fetch URLs (RFC 8058 §1).
  app.get('/mail/unsubscribe/:token', { schema: { params: TokenParams } }, async (request, reply) => {
    userFrom(request.params.token, request.log)
    return renderPage(request, reply, 'mail/unsubscribe', {
      title: 'Stop these emails',
      action: `/mail/unsubscribe/${request.params.token}`,
      done: false,
    })
  })

  // No CSRF token: RFC 8058 §3.1 has mail clients POST without cookies or any other context; the
  // signed URL names the person and the action only ever removes email.
  app.post('/mail/unsubscribe/:token', { schema: { params: TokenParams } }, async (request, reply) => {
    const userId = userFrom(request.params.token, request.log)
    const body = (request.body ?? {}) as Record<string, unknown>
    // The page's own button says so; anything else is a mail client's one-click POST.
    const source = body.from_page === '1' ? 'page' : 'one-click'
    const changed = await optOut(db, userId, source, clock.now())
    request.log.info({ userId, source, changed }, 'opted out of email')
    return renderPage(request, reply, 'mail/unsubscribe', { title: 'You will receive no more emails', done: true })
  })

  const transport = config.mail.transport
  if (!config.sandboxEnabled || transport.kind !== 'mailbox') return

  app.get('/sandbox/mail', async (request, reply) =>
    renderPage(request, reply, 'mail/mailbox', {
      title: 'Local mailbox',
      messages: readMailbox(transport.dir),
      dir: transport.dir,
    }),
  )

  const NameParams = Type.Object({ name: Matching('^[0-9]{13}-[0-9a-f]{12}$', 26) })

  app.get('/sandbox/mail/:name', { schema: { params: NameParams } }, async (request, reply) => {
    const found = readMailboxEntry(transport.dir, request.params.name)
    if (!found) throw new DomainError('request.not_found', 'No such message in the local mailbox.', {})
    const links = [...new Set(found.entry.text.match(/https?:\/\/\S+/g) ?? [])]
    return renderPage(request, reply, 'mail/message', {
      title: found.entry.subject,
      entry: found.entry,
      links,
      raw: found.raw,
    })
  })

  // The HTML part on its own, scripts and everything else off, for a look at how it renders.
  app.get('/sandbox/mail/:name/html', { schema: { params: NameParams } }, async (request, reply) => {
    const found = readMailboxEntry(transport.dir, request.params.name)
    if (!found) throw new DomainError('request.not_found', 'No such message in the local mailbox.', {})
    return reply
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox")
      .type('text/html; charset=utf-8')
      .send(found.entry.html)
  })
}

export default mail
