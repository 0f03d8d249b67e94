// How form and query input reaches the schemas: a blank field is an absent field (a filter form's
// "any app", an unticked choice), and query-string values lose surrounding spaces. Passwords and
// other body text keep their spaces. Applied to the application's own routes (routes/index.ts).
import type { FastifyRequest } from 'fastify'

type Fields = Record<string, unknown>

function withoutBlanks(fields: Fields, trim: boolean): Fields {
  const out: Fields = {}
  for (const [name, value] of Object.entries(fields)) {
    const clean = (v: unknown) => (typeof v === 'string' && trim ? v.trim() : v)
    if (Array.isArray(value)) {
      const kept = value.map(clean).filter((v) => v !== '')
      if (kept.length > 0) out[name] = kept
    } else {
      const v = clean(value)
      if (v !== '') out[name] = v
    }
  }
  return out
}

export async function blankFieldsAbsent(request: FastifyRequest): Promise<void> {
  if (request.query && typeof request.query === 'object') request.query = withoutBlanks(request.query as Fields, true)
  const urlencoded = /^application\/x-www-form-urlencoded\b/i.test(request.headers['content-type'] ?? '')
  if (urlencoded && request.body && typeof request.body === 'object')
    request.body = withoutBlanks(request.body as Fields, false)
}
