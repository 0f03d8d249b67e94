// Carta API client: the few endpoints Scope Ledger reads, with a timeout on every call and
// liberal parsing of the answers (field names vary between API versions).
import type { CartaAppConfig } from '../config.js'
import { DEFAULT_TIMEOUT_MS } from './oauth-client.js'

export type ApiErrorKind = 'unauthorized' | 'forbidden' | 'not_found' | 'unavailable' | 'malformed'

export class CartaApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly details: {
      status?: number
      timeout?: boolean /** scope named by WWW-Authenticate (RFC 6750 §3) */
      scope?: string
    } = {},
  ) {
    super(message)
    this.name = 'CartaApiError'
  }
}

export interface CartaUser {
  id: string
  email: string | null
  firstName: string | null
  lastName: string | null
  /** "First Last", or null when Carta shared no name. */
  name: string | null
}

export interface CartaIssuer {
  id: string
  legalName: string
}

export interface ApiCallOptions {
  timeoutMs?: number
}

/** GET {api}/v1alpha1/user (scope read_user_info). */
export async function fetchUser(
  app: CartaAppConfig,
  accessToken: string,
  options: ApiCallOptions = {},
): Promise<CartaUser> {
  const body = await getJson(app, accessToken, '/v1alpha1/user', options)
  return parseUser(body)
}

/** GET {api}/v1alpha1/issuers (scope read_issuer_info). */
export async function listIssuers(
  app: CartaAppConfig,
  accessToken: string,
  options: ApiCallOptions = {},
): Promise<CartaIssuer[]> {
  const body = await getJson(app, accessToken, '/v1alpha1/issuers', options)
  return parseIssuers(body)
}

/** GET {api}/v1alpha1/issuers/{id}/capitalization-table-summary (scope read_issuer_capitalizationtablesummary). */
export async function fetchCapTableSummary(
  app: CartaAppConfig,
  accessToken: string,
  issuerId: string,
  options: ApiCallOptions = {},
): Promise<Record<string, unknown>> {
  const body = await getJson(
    app,
    accessToken,
    `/v1alpha1/issuers/${encodeURIComponent(issuerId)}/capitalization-table-summary`,
    options,
  )
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CartaApiError('malformed', 'cap table summary is not a JSON object')
  return body as Record<string, unknown>
}

export function parseUser(body: unknown): CartaUser {
  if (typeof body !== 'object' || body === null)
    throw new CartaApiError('malformed', 'user answer is not a JSON object')
  let b = body as Record<string, unknown>
  if (
    b.id === undefined &&
    b.userId === undefined &&
    b.user_id === undefined &&
    typeof b.user === 'object' &&
    b.user !== null
  ) {
    b = b.user as Record<string, unknown>
  }
  const rawId = b.id ?? b.userId ?? b.user_id
  const id =
    typeof rawId === 'number' && Number.isFinite(rawId) ? String(rawId) : typeof rawId === 'string' ? rawId.trim() : ''
  if (!id) throw new CartaApiError('malformed', 'user answer has no id')
  const text = (...values: unknown[]): string | null => {
    for (const v of values) if (typeof v === 'string' && v.trim()) return v.trim()
    return null
  }
  const firstName = text(b.firstName, b.first_name, b.given_name)
  const lastName = text(b.lastName, b.last_name, b.family_name)
  const name = [firstName, lastName].filter(Boolean).join(' ') || text(b.name, b.fullName, b.full_name)
  return { id, email: text(b.email), firstName, lastName, name }
}

export function parseIssuers(body: unknown): CartaIssuer[] {
  const b = body as Record<string, unknown> | null
  const list = Array.isArray(body) ? body : [b?.issuers, b?.results, b?.data].find(Array.isArray)
  if (!Array.isArray(list)) throw new CartaApiError('malformed', 'issuers answer holds no list')
  const issuers: CartaIssuer[] = []
  for (const item of list) {
    if (typeof item !== 'object' || item === null) continue
    const i = item as Record<string, unknown>
    const id = typeof i.id === 'number' ? String(i.id) : typeof i.id === 'string' ? i.id : null
    const legalName = [i.legalName, i.legal_name, i.name].find(
      (v): v is string => typeof v === 'string' && v.trim() !== '',
    )
    if (id === null) continue
    issuers.push({ id, legalName: legalName ?? `Issuer ${id}` })
  }
  return issuers
}

async function getJson(
  app: CartaAppConfig,
  accessToken: string,
  path: string,
  options: ApiCallOptions,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  let response: Response
  try {
    response = await fetch(`${app.apiBaseUrl}${path}`, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    })
  } catch (err) {
    const e = err as { name?: string; cause?: { code?: string } }
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      throw new CartaApiError('unavailable', `Carta API ${path} did not answer in time`, { timeout: true })
    throw new CartaApiError(
      'unavailable',
      `Carta API ${path} could not be reached (${e.cause?.code ?? 'network error'})`,
    )
  }
  const status = response.status
  if (status === 401) throw new CartaApiError('unauthorized', `Carta API ${path} answered 401`, { status })
  if (status === 403) {
    // RFC 6750 §3.1: insufficient_scope may name the scope needed.
    const scope = /scope="([^"]*)"/.exec(response.headers.get('www-authenticate') ?? '')?.[1]
    throw new CartaApiError('forbidden', `Carta API ${path} answered 403${scope ? ` (needs ${scope})` : ''}`, {
      status,
      ...(scope ? { scope } : {}),
    })
  }
  if (status === 404) throw new CartaApiError('not_found', `Carta API ${path} answered 404`, { status })
  if (status >= 500 || status === 429)
    throw new CartaApiError('unavailable', `Carta API ${path} answered ${status}`, { status })
  if (status !== 200)
    throw new CartaApiError('malformed', `Carta API ${path} answered unexpected ${status}`, { status })
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch {
    throw new CartaApiError('malformed', `Carta API ${path} answered with something that is not JSON`, { status })
  }
}
