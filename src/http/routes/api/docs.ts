// The API reference page's data, read from the OpenAPI document itself (so the page cannot
// disagree with the document): each operation with its permission, parameters, body and
// responses, and the problem codes the `type` of an error points at (#problem-<code>).

interface SchemaLike {
  type?: string | string[]
  description?: string
  properties?: Record<string, SchemaLike>
  required?: string[]
  items?: SchemaLike
  anyOf?: SchemaLike[]
  enum?: unknown[]
}

export interface DocField {
  name: string
  type: string
  required: boolean
  description: string
}

export interface DocOperation {
  id: string
  method: string
  path: string
  summary: string
  description: string
  permission: string
  parameters: DocField[]
  body: DocField[]
  responses: Array<{ status: string; fields: DocField[] }>
}

/** Codes an API error's `type` may name, with what they mean for the caller. */
export const PROBLEM_CODES: Array<{ code: string; status: number; meaning: string }> = [
  { code: 'api.unauthorized', status: 401, meaning: 'No API key, or an unknown or revoked one.' },
  { code: 'api.forbidden', status: 403, meaning: 'The key lacks the permission the operation needs.' },
  { code: 'api.rate_limited', status: 429, meaning: 'Too many requests for this key; wait Retry-After seconds.' },
  { code: 'api.user_not_found', status: 404, meaning: 'No end user with this Carta or external id.' },
  {
    code: 'api.reconnect_required',
    status: 409,
    meaning: 'The grant is broken or revoked: send the user to reconnectUrl.',
  },
  { code: 'request.invalid', status: 400, meaning: 'The query or body failed validation; see errors.' },
  { code: 'request.not_found', status: 404, meaning: 'No such route, or an id out of range.' },
  { code: 'request.too_large', status: 413, meaning: 'The body is larger than the operation accepts.' },
  { code: 'request.media_type', status: 415, meaning: 'Send bodies as application/json.' },
  { code: 'request.bad', status: 400, meaning: 'The request could not be read (e.g. malformed JSON).' },
  { code: 'rollout.not_found', status: 404, meaning: 'No rollout with this id.' },
  { code: 'rollout.archived', status: 409, meaning: 'The rollout is archived and issues no more links.' },
  { code: 'user.not_found', status: 404, meaning: 'The user is gone.' },
  { code: 'lacking.unknown_scope', status: 400, meaning: 'scope is not one of the rollout’s required scopes.' },
  { code: 'lacking.unknown_app', status: 400, meaning: 'app names no app.' },
  { code: 'lacking.bad_cursor', status: 400, meaning: 'The cursor is malformed or from another sort.' },
  { code: 'connect_session.bad_return', status: 400, meaning: 'returnTo is not under an allowed origin.' },
  { code: 'carta.unavailable', status: 503, meaning: 'Carta could not be reached to refresh the token; retry.' },
  { code: 'carta.bad_answer', status: 502, meaning: 'Carta answered the refresh in a way that could not be used.' },
  { code: 'internal', status: 500, meaning: 'An unexpected error; it was logged.' },
]

function typeOf(schema: SchemaLike | undefined): string {
  if (!schema) return ''
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(' | ')
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ')
  if (schema.type === 'array') return `${typeOf(schema.items)}[]`
  if (Array.isArray(schema.type)) return schema.type.join(' | ')
  return schema.type ?? 'any'
}

function fields(schema: SchemaLike | undefined): DocField[] {
  if (!schema?.properties) return []
  return Object.entries(schema.properties).map(([name, s]) => ({
    name,
    type: typeOf(s),
    required: schema.required?.includes(name) ?? false,
    description: s.description ?? '',
  }))
}

type Doc = { paths?: Record<string, Record<string, Record<string, unknown>>> }

export function docsPageData(document: unknown) {
  const doc = document as Doc
  const operations: DocOperation[] = []
  for (const [path, methods] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(methods)) {
      const o = op as {
        summary?: string
        description?: string
        'x-permission'?: string
        parameters?: Array<{ name: string; in: string; required?: boolean; schema?: SchemaLike; description?: string }>
        requestBody?: { content?: Record<string, { schema?: SchemaLike }> }
        responses?: Record<string, { content?: Record<string, { schema?: SchemaLike }> }>
      }
      const description = (o.description ?? '').split('\n\nNeeds the')[0] ?? ''
      operations.push({
        id: `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, '-').replace(/-+$/, ''),
        method: method.toUpperCase(),
        path,
        summary: o.summary ?? '',
        description: description.startsWith('Needs the') ? '' : description,
        permission: o['x-permission'] ?? '',
        parameters: (o.parameters ?? []).map((p) => ({
          name: `${p.name} (${p.in})`,
          type: typeOf(p.schema),
          required: p.required ?? false,
          description: p.description ?? p.schema?.description ?? '',
        })),
        body: fields(Object.values(o.requestBody?.content ?? {})[0]?.schema),
        responses: Object.entries(o.responses ?? {}).map(([status, r]) => ({
          status,
          fields: status.startsWith('2') ? fields(Object.values(r.content ?? {})[0]?.schema) : [],
        })),
      })
    }
  }
  return { operations, problemCodes: PROBLEM_CODES }
}
