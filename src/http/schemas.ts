// Building blocks of the request schemas every route declares (params, querystring, body), so
// validation, request types and a later OpenAPI document come from one place. Values arrive as
// strings (paths, query strings, urlencoded forms); Fastify's Ajv coerces them to the declared
// types (coerceTypes 'array': a repeated field becomes an array, a single value fits an array).
// Empty fields count as absent (plugins/input.ts). Limits match what both engines can store:
// ids fit PostgreSQL's `integer`, and text holds no NUL (PostgreSQL refuses it) nor any other
// control character.
import { Type } from 'typebox'
import { MAX_ID } from '../db/index.js'
import { LACKING_SORTS } from '../rollouts/lacking.js'

/** A row id: 1 .. 2^31-1 (PostgreSQL integer). */
export const Id = Type.Integer({ minimum: 1, maximum: MAX_ID })

const NO_CONTROLS = '^[^\\u0000-\\u001F\\u007F]*$'

/** Single-line text without control characters (U+0000–U+001F, U+007F), at most `maxLength` characters. */
export function Text(maxLength: number) {
  return Type.String({ maxLength, pattern: NO_CONTROLS })
}

/** A scope name: RFC 6749 §3.3 scope-token characters. */
export const Scope = Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' })

/** `{ id }` path parameter. */
export const IdParams = Type.Object({ id: Id })

/** Text matching `pattern` (which must itself exclude control characters). */
export function Matching(pattern: string, maxLength: number) {
  return Type.String({ maxLength, pattern })
}

/** The lacking list's filter (rollout page, bulk links, CSV export; the CLI checks its options against it too). */
export const LackingFilterFields = {
  scope: Type.Optional(Scope),
  app: Type.Optional(Id),
  q: Type.Optional(Text(200)),
  sort: Type.Optional(Type.Enum([...LACKING_SORTS])),
}
