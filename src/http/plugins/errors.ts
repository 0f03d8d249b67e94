// The one place errors become pages (src/README.md, "Errors"): domain errors by their code
// (../error-pages.ts), Fastify's own errors (validation, CSRF, rate limit, bad requests) by kind,
// anything else as a 500 page and an error log line. Also the 404 page for unknown addresses.
import { validateHeaderValue } from 'node:http'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { DomainError, isDomainError } from '../../errors.js'
import { renderError } from '../render.js'
import { errorPage } from '../error-pages.js'

export default fp(
  async (app) => {
    app.setErrorHandler(async (error: FastifyError, request, reply) => {
      if (isDomainError(error)) {
        const { status, title, message, ...links } = errorPage(error, request.url)
        request.log.warn({ status, code: error.code, reason: message }, title)
        return renderError(request, reply, status, title, message, links)
      }
      if (error.statusCode === 429) {
        request.log.warn('rate limit reached')
        return renderError(request, reply, 429, 'Too many requests', 'Please wait a minute and try again.')
      }
      if (error.code?.startsWith('FST_CSRF')) {
        request.log.warn({ code: error.code }, 'CSRF check failed')
        return renderError(
          request,
          reply,
          403,
          'This form has expired',
          'The page was open too long or came from elsewhere. Go back, reload the page and submit again.',
        )
      }
      // A path that fails its schema (e.g. an id past the column's range) names nothing that exists;
      // other input that fails is a bad request. Both pages come from the same table.
      if (error.validation) {
        const notFound = error.validationContext === 'params'
        const first = error.validation[0]
        const field = first?.instancePath.split('/').filter(Boolean).join('.') ?? ''
        const reason = field ? `"${field}" ${first?.message ?? 'is not valid'}.` : `${error.message}.`
        const page = errorPage(
          notFound
            ? new DomainError('request.not_found', error.message, {})
            : new DomainError('request.invalid', `The request was refused: ${reason}`, { title: 'Invalid input' }),
          request.url,
        )
        const { status, title, message, ...links } = page
        if (notFound) request.log.info({ reason: error.message }, 'not found')
        else request.log.warn({ status, reason: error.message }, 'bad request')
        return renderError(request, reply, status, title, message, links)
      }
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        request.log.warn({ status: error.statusCode ?? 400, reason: error.message }, 'bad request')
        return renderError(request, reply, error.statusCode ?? 400, 'Bad request', error.message)
      }
      request.log.error({ err: error }, 'unhandled error')
      return renderError(
        request,
        reply,
        500,
        'Something went wrong',
        'The error has been logged. Please try again in a moment.',
      )
    })
    // Node refuses a header value holding a control or non-Latin-1 character while writing the
    // response, after every hook has run. Checked here first, such a value becomes a 500 page and
    // a log line (the header is dropped) instead of a request that never answers.
    app.addHook('onSend', async (request, reply, payload) => {
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value === undefined) continue
        try {
          for (const one of Array.isArray(value) ? value : [value]) validateHeaderValue(name, String(one))
        } catch (err) {
          reply.removeHeader(name)
          request.log.error({ err, header: name }, 'refused a response header Node cannot send')
          throw new Error(`response header ${name} holds a character HTTP cannot carry`)
        }
      }
      return payload
    })
    app.setNotFoundHandler(async (request, reply) => {
      request.log.info('not found')
      return renderError(request, reply, 404, 'Page not found', 'There is nothing at this address.')
    })
  },
  { name: 'errors' },
)
