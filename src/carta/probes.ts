// Scope discovery's foundations: for each documented read scope, the cheapest documented read-only
// Carta endpoint that proves it, and probeScope() which calls it with a token and says what the
// answer proves. Carta answers a token without the endpoint's scope with 403 and ErrorInfo reason
// INSUFFICIENT_SCOPE (https://docs.carta.com/carta/docs/error-codes); any other refusal proves
// nothing about the scope. Paths and scopes: https://docs.carta.com/api-platform/reference.
import type { CartaAppConfig } from '../config.js'
import {
  apiErrorFor,
  CartaApiError,
  INSUFFICIENT_SCOPE,
  ISSUERS_PATH,
  parseIssuerPage,
  parseRateLimit,
  requestCarta,
  USER_PATH,
} from './api.js'

/** Inputs a probe may need, learned from an earlier probe's answer. */
export type ProbeInput = 'issuerId'

export interface ScopeProbe {
  scope: string
  /** Path template; `{issuerId}` is filled, URL-encoded, from the probe context. */
  path: string
  /** The smallest page where the endpoint is a list. */
  query?: Readonly<Record<string, string>>
  needs: readonly ProbeInput[]
  /** What a 200 from this probe yields for later probes. */
  provides: readonly ProbeInput[]
  /** Carta's reference page for the endpoint. */
  docs: string
}

const REF = 'https://docs.carta.com/api-platform/reference'

/** One probe per documented read scope that has a cheap read-only endpoint; others have none. */
export const SCOPE_PROBES: readonly ScopeProbe[] = Object.freeze([
  {
    scope: 'read_user_info',
    path: USER_PATH,
    needs: [],
    provides: [],
    docs: `${REF}/v-1-alpha-1-user-get-current-user/`,
  },
  {
    scope: 'read_issuer_info',
    path: ISSUERS_PATH,
    query: { pageSize: '1' },
    needs: [],
    provides: ['issuerId'],
    docs: `${REF}/v-1-alpha-1-issuers-list-issuers/`,
  },
  {
    scope: 'read_issuer_capitalizationtablesummary',
    path: '/v1alpha1/issuers/{issuerId}/capitalizationTable',
    needs: ['issuerId'],
    provides: [],
    docs: `${REF}/v-1-alpha-1-issuers-get-capitalization-table/`,
  },
  {
    scope: 'read_issuer_shareclasses',
    path: '/v1alpha1/issuers/{issuerId}/shareClasses',
    needs: ['issuerId'],
    provides: [],
    docs: `${REF}/v-1-alpha-1-issuers-list-share-classes/`,
  },
  {
    scope: 'read_issuer_stakeholders',
    path: '/v1alpha1/issuers/{issuerId}/stakeholders',
    query: { pageSize: '1' },
    needs: ['issuerId'],
    provides: [],
    docs: 'https://docs.carta.com/carta/reference/v1alpha1issuersliststakeholders',
  },
  {
    scope: 'read_corporation_info',
    path: '/v1alpha1/corporations',
    needs: [],
    provides: [],
    docs: `${REF}/v-1-alpha-1-corporations-list-corporations/`,
  },
  {
    scope: 'read_investor_firms',
    path: '/v1alpha1/investors/firms',
    query: { pageSize: '1' },
    needs: [],
    provides: [],
    docs: `${REF}/v-1-alpha-1-investors-list-firms/`,
  },
] satisfies ScopeProbe[])

export function findProbe(scope: string): ScopeProbe | undefined {
  return SCOPE_PROBES.find((p) => p.scope === scope)
}

export interface ProbeContext {
  /** An issuer the token's user can see (from a read_issuer_info probe or the issuer list). */
  issuerId?: string | number | null
  timeoutMs?: number
  /** Epoch ms of "now" for the evidence and for HTTP-date Retry-After (default: Date.now()). */
  now?: () => number
}

/** The request path (with query) a probe sends in `context`, or null when an input is missing. */
export function probePath(probe: ScopeProbe, context: ProbeContext = {}): string | null {
  let path = probe.path
  if (probe.needs.includes('issuerId')) {
    const id = context.issuerId
    if (id === undefined || id === null || String(id).trim() === '') return null
    path = path.replace('{issuerId}', encodeURIComponent(String(id).trim()))
  }
  const query = probe.query ? `?${new URLSearchParams(probe.query)}` : ''
  return `${path}${query}`
}

/** Scopes in the order to probe them: those that provide inputs first (read_issuer_info before the cap table). */
export function probeOrder(scopes: Iterable<string>): string[] {
  const rank = (s: string) => {
    const p = findProbe(s)
    if (!p) return 3
    return p.provides.length > 0 ? 0 : p.needs.length === 0 ? 1 : 2
  }
  return [...new Set(scopes)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
}

export type ProbeOutcome = 'held' | 'not_held' | 'unknown' | 'unauthorized' | 'rate_limited'

export interface ProbeResult {
  scope: string
  outcome: ProbeOutcome
  /** Carta's HTTP status; null when no request was sent or no answer came. */
  status: number | null
  /** `GET <path>` as sent (never the token); null when no request was sent. */
  endpoint: string | null
  /** Carta's ErrorInfo reason, or why the probe could not decide (NO_PROBE, NEEDS_ISSUER_ID, …). */
  reason?: string
  /** rate_limited: how long to wait (Retry-After, else RateLimit-Reset / X-RateLimit-Reset). */
  retryAfterMs?: number
  /** Inputs learned for later probes: read_issuer_info yields the first issuer id. */
  learned?: { issuerId?: string }
  /** When the answer came (epoch ms). */
  at: number
}

/**
 * Calls the endpoint that proves `scope` with `accessToken`: 200 → held; 403 with reason
 * INSUFFICIENT_SCOPE (or RFC 6750 insufficient_scope) → not_held; other 403, 404, 5xx, timeouts →
 * unknown; 401 → unauthorized (refresh once and probe again); 429 → rate_limited. Never throws
 * for a Carta answer or a network failure.
 */
export async function probeScope(
  app: CartaAppConfig,
  accessToken: string,
  scope: string,
  context: ProbeContext = {},
): Promise<ProbeResult> {
  const now = context.now ?? Date.now
  const probe = findProbe(scope)
  if (!probe) return { scope, outcome: 'unknown', status: null, endpoint: null, reason: 'NO_PROBE', at: now() }
  const path = probePath(probe, context)
  if (path === null)
    return { scope, outcome: 'unknown', status: null, endpoint: null, reason: 'NEEDS_ISSUER_ID', at: now() }
  const endpoint = `GET ${path}`
  let response: Awaited<ReturnType<typeof requestCarta>>
  try {
    response = await requestCarta(app, accessToken, path, context.timeoutMs ? { timeoutMs: context.timeoutMs } : {})
  } catch (err) {
    const timeout = err instanceof CartaApiError && err.details.timeout
    return { scope, outcome: 'unknown', status: null, endpoint, reason: timeout ? 'TIMEOUT' : 'UNREACHABLE', at: now() }
  }
  const at = now()
  const { status } = response
  const error = apiErrorFor(response, path, `probe for ${scope}`, at)
  if (!error) {
    const result: ProbeResult = { scope, outcome: 'held', status, endpoint, at }
    if (probe.provides.includes('issuerId')) {
      try {
        const first = parseIssuerPage(response.json).issuers[0]
        if (first) result.learned = { issuerId: first.id }
      } catch {
        // The status proves the scope; an odd body only means no issuer id to pass on.
      }
    }
    return result
  }
  const reason = error.details.reason
  const withReason = (r: string | undefined) => (r ? { reason: r } : {})
  switch (error.kind) {
    case 'unauthorized':
      return { scope, outcome: 'unauthorized', status, endpoint, ...withReason(reason), at }
    case 'forbidden':
      if (reason === INSUFFICIENT_SCOPE) return { scope, outcome: 'not_held', status, endpoint, reason, at }
      // ACCESS_TO_RESOURCE_RESTRICTED, MISSING_INTERNAL_PERMISSION or no reason: not about the scope.
      return { scope, outcome: 'unknown', status, endpoint, reason: reason ?? 'FORBIDDEN', at }
    case 'rate_limited': {
      const retryAfterMs = error.details.retryAfterMs ?? parseRateLimit(response.headers, at).retryAfterMs
      return {
        scope,
        outcome: 'rate_limited',
        status,
        endpoint,
        ...withReason(reason),
        ...(retryAfterMs === null || retryAfterMs === undefined ? {} : { retryAfterMs }),
        at,
      }
    }
    case 'not_found':
      return { scope, outcome: 'unknown', status, endpoint, reason: reason ?? 'NOT_FOUND', at }
    case 'unavailable':
      return { scope, outcome: 'unknown', status, endpoint, reason: reason ?? 'UNAVAILABLE', at }
    default:
      return { scope, outcome: 'unknown', status, endpoint, reason: reason ?? `HTTP_${status}`, at }
  }
}
