// Request schemas of the sandbox's routes (its /v1alpha1 API takes no input besides the bearer
// token and an issuer id). The OAuth endpoints name their parameters but leave checking them to
// the sandbox itself, so a malformed request gets RFC 6749's answer (an error redirect or an
// `invalid_request` JSON body, §4.1.2.1 and §5.2), not a generic validation page. The demo's own
// forms and the JSON controls are checked here.
import { Type } from 'typebox'

const Field = Type.Optional(Type.Unknown())

/** The sandbox home page's "move the clock" form. */
export const ClockForm = Type.Object({ form_token: Type.Optional(Type.String({ maxLength: 200 })) })

/** `next`: where to go after signing in; any text, reduced to a sandbox path by the plugin. */
export const NextQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) })
export const SignInForm = Type.Object({
  user_id: Type.Optional(Type.String({ maxLength: 200 })),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
})
export const SignOutForm = NextQuery

/** RFC 6749 §4.1.1 and RFC 7636 §4.3. */
export const AuthorizeQuery = Type.Object({
  response_type: Field,
  client_id: Field,
  redirect_uri: Field,
  scope: Field,
  state: Field,
  code_challenge: Field,
  code_challenge_method: Field,
})
/** The consent page's answer: the pending request, the scopes ticked, allow or deny. */
export const ConsentForm = Type.Object({ request_id: Field, scope: Field, decision: Field })
/** RFC 6749 §4.1.3 and §6 (client credentials arrive by HTTP Basic). */
export const TokenForm = Type.Object({
  grant_type: Field,
  code: Field,
  redirect_uri: Field,
  code_verifier: Field,
  refresh_token: Field,
  scope: Field,
})
/** RFC 7009 §2.1. */
export const RevokeForm = Type.Object({ token: Field, token_type_hint: Field })

export const ClockControl = Type.Object({ advanceSeconds: Type.Number() })
export const FailControl = Type.Object({
  endpoint: Type.Enum(['token', 'revoke', 'api']),
  status: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })),
  times: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
})
export const ShrinkControl = Type.Object({
  userId: Type.String({ maxLength: 200 }),
  clientId: Type.String({ maxLength: 200 }),
  removeScopes: Type.Array(Type.String({ maxLength: 200 }), { minItems: 1, maxItems: 100 }),
})
/** The next code issued grants these scopes on top of those the user chose (RFC 6749 §3.3 allows it). */
export const WidenControl = Type.Object({
  addScopes: Type.Array(Type.String({ maxLength: 200 }), { minItems: 1, maxItems: 100 }),
})
export const ResetControl = Type.Object({})

/** The API's rate limit at run time; the control checks the numbers itself (0 = off). */
export const RateLimitControl = Type.Object({ perSecond: Field, perMinute: Field })
/** Minting demo grants; the control checks each field itself and names the one at fault. */
export const MintGrantsControl = Type.Object({
  clientId: Field,
  users: Field,
  scopes: Field,
  expiresInSeconds: Field,
  randomSubset: Field,
})
export const MintGrantsQuery = Type.Object({ include_scopes: Type.Optional(Type.String({ maxLength: 10 })) })
