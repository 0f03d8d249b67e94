// Errors of the API as RFC 9457 problem details (application/problem+json): `status` and `title`
// exactly as the error page table has them (../../error-pages.ts), `detail` its message, `type` a
// URI reference naming the code (resolved against /api/docs, where each code is listed) and `code`
// the code itself. Fastify's own errors (validation, body too large, rate limit) take the same
// form. See src/README.md, "The HTTP layer".
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { DomainError, isDomainError } from '../../../errors.js'
import { errorPage } from '../../error-pages.js'

export const PROBLEM_TYPE = 'application/problem+json'

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI reference naming the problem: /api/docs#problem-<code>' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'The machine-readable error code' }),
    reconnectUrl: Type.Optional(
      Type.String({ description: 'api.reconnect_required: where the user connects to Carta again' }),
    ),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: 'request.invalid: what failed validation',
      }),
    ),
  },
  { additionalProperties: false },
)

/** Response schemas of the problems a route may answer with, for its `response` (and the OpenAPI document). */
export function problems(
  ...statuses: number[]
): Record<number, { description: string; content: { [PROBLEM_TYPE]: { schema: typeof Problem } } }> {
  return Object.fromEntries(
    [401, 429, ...statuses].map((s) => [
      s,
      { description: 'Problem details (RFC 9457)', content: { [PROBLEM_TYPE]: { schema: Problem } } },
    ]),
  )
}

export function problemType(code: string): string {
  return `/api/docs#problem-${code}`
}

interface ProblemBody {
  type: string
  title: string
  status: number
  detail: string
  code: string
  reconnectUrl?: string
  errors?: Array<{ field: string; message: string }>
}

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  return reply.code(body.status).type(PROBLEM_TYPE).send(body)
}

function fromDomain(err: DomainError, path: string): ProblemBody {
  const { status, title, message } = errorPage(err, path)
  const body: ProblemBody = { type: problemType(err.code), title, status, detail: message, code: err.code }
  if (isDomainError(err, 'api.reconnect_required')) body.reconnectUrl = err.details.reconnectUrl
  return body
}

export function problemFor(error: FastifyError | DomainError, request: FastifyRequest): ProblemBody | null {
  if (isDomainError(error)) return fromDomain(error, request.url)
  const e = error as FastifyError
  if (e.statusCode === 429)
    return {
      type: problemType('api.rate_limited'),
      title: 'Too many requests',
      status: 429,
      detail: 'This API key sent too many requests. Wait for the number of seconds in Retry-After.',
      code: 'api.rate_limited',
    }
  if (e.validation) {
    const notFound = e.validationContext === 'params'
    const body = fromDomain(
      notFound
        ? new DomainError('request.not_found', e.message, {})
        : new DomainError('request.invalid', `The request was refused: ${e.message}.`, { title: 'Invalid request' }),
      request.url,
    )
    if (notFound) return { ...body, title: 'Not found', detail: 'There is nothing at this address.' }
    body.errors = e.validation.map((v) => ({
      field: `${e.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`,
      message: v.message ?? 'is not valid',
    }))
    return body
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    const code =
      e.statusCode === 413 ? 'request.too_large' : e.statusCode === 415 ? 'request.media_type' : 'request.bad'
    return { type: problemType(code), title: 'Bad request', status: e.statusCode, detail: e.message, code }
  }
  return null
}
