// Request and response schemas of /api/v1: validation, serialization and the OpenAPI document
// all come from these (src/README.md, "The HTTP layer → Schemas").
import { Type } from 'typebox'
import { LACKING_SORTS } from '../../../rollouts/lacking.js'
import { Id, Scope, Text } from '../../schemas.js'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])
const Millis = Type.Integer({ description: 'Epoch milliseconds' })

/** A Carta user id or the integrator's own id: printable, no control characters. */
export const ExternalRef = Text(200)

export const ApiUserSchema = Type.Object({
  cartaUserId: Nullable(Type.String()),
  externalUserId: Nullable(Type.String()),
  email: Nullable(Type.String()),
  name: Nullable(Type.String()),
  status: Type.String({ description: 'connected | needs_reconnect' }),
  app: Type.Union([Type.Object({ key: Type.String(), clientId: Type.String() }), Type.Null()]),
  grantedScopes: Type.Array(Type.String()),
  scopesSource: Nullable(
    Type.String({ description: 'How the scopes are known: reported, assumed, or another source the ledger records' }),
  ),
  rollouts: Type.Array(
    Type.Object({
      id: Type.Integer(),
      name: Type.String(),
      covered: Type.Boolean(),
      missingScopes: Type.Array(Type.String()),
    }),
  ),
})

export const AccessTokenSchema = Type.Object({
  accessToken: Type.String(),
  expiresAt: Type.Union([Millis, Type.Null()]),
  scopes: Type.Array(Type.String()),
})

export const LinkSchema = Type.Object({
  url: Type.String(),
  expiresAt: Millis,
  reused: Type.Boolean({ description: 'True when an open link already existed and is handed out again' }),
})

export const ConnectSessionSchema = Type.Object({
  url: Type.String({ description: 'Send the user here once; it starts the Carta connection' }),
  expiresAt: Millis,
})

export const RolloutSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  status: Type.String({ description: 'active | archived' }),
  app: Type.Object({ key: Type.String(), name: Type.String() }),
  requiredScopes: Type.Array(Type.String()),
  buildStatus: Type.String({ description: 'building | ready' }),
  createdAt: Millis,
  members: Type.Integer(),
  covered: Type.Integer(),
})

export const RolloutSummarySchema = Type.Object({
  ...RolloutSchema.properties,
  lacking: Type.Integer(),
  reconnect: Type.Integer(),
  coveragePct: Type.Union([Type.Number(), Type.Null()]),
  perScope: Type.Array(Type.Object({ scope: Type.String(), lacking: Type.Integer() })),
})

export const LackingQuery = Type.Object({
  scope: Type.Optional(Scope),
  app: Type.Optional(Id),
  q: Type.Optional(Text(200)),
  sort: Type.Optional(Type.Enum([...LACKING_SORTS])),
  cursor: Type.Optional(Text(200)),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
})

export const LackingPageSchema = Type.Object({
  items: Type.Array(
    Type.Object({
      cartaUserId: Nullable(Type.String()),
      externalUserId: Nullable(Type.String({ description: "The integrator's own id, set by a connect session" })),
      email: Nullable(Type.String()),
      state: Type.String({ description: 'lacking | reconnect' }),
      reason: Nullable(Type.String()),
      missingScopes: Type.Array(Type.String()),
      grantedScopes: Type.Array(Type.String()),
      app: Nullable(Type.String()),
      authorizedAt: Millis,
    }),
  ),
  nextCursor: Nullable(Type.String({ description: 'Pass as ?cursor= for the next page; null on the last' })),
})
