// Carta API client: the few endpoints Scope Ledger reads, with a timeout on every call, Carta's
// documented error format (https://docs.carta.com/carta/docs/error-codes) and rate-limit headers
// (https://docs.carta.com/carta/docs/rate-limiting), and liberal parsing of the answers: field
// names vary, protobuf int64 and decimals arrive as JSON strings, lists may come nested.
import { type CartaCall, type CartaObserver, secondsSince } from '../metrics.js'
import type { CartaAppConfig } from '../config.js'
import { DEFAULT_TIMEOUT_MS } from './oauth-client.js'

export type ApiErrorKind = 'unauthorized' | 'forbidden' | 'not_found' | 'rate_limited' | 'unavailable' | 'malformed'

/** Carta's ErrorInfo reasons (error-codes page); other strings may appear and are kept as sent. */
export const INSUFFICIENT_SCOPE = 'INSUFFICIENT_SCOPE'

export interface CartaApiErrorDetails {
  status?: number
  /** True when the call was cut off by our timeout. */
  timeout?: boolean
  /** Scope named by an RFC 6750 §3.1 `insufficient_scope` challenge, when the server sent one. */
  scope?: string
  /**
   * Why Carta refused: the first `details[].reason` of Carta's error body (INSUFFICIENT_SCOPE,
   * ACCESS_TO_RESOURCE_RESTRICTED, MISSING_INTERNAL_PERMISSION, MISSING_OR_INVALID_ACCESS_TOKEN…);
   * an RFC 6750 `insufficient_scope` (header or JSON `error`) is reported as INSUFFICIENT_SCOPE.
   */
  reason?: string
  /** Carta's numeric `code` (google.rpc.Code), when sent. */
  code?: number
  /** What was asked for, in words ("issuer cap table"): pages say which resource was missing. */
  resource?: string
  /** The request path (never the token; query strings hold no secrets here). */
  path?: string
  /** 429: how long to wait, from Retry-After or RateLimit-Reset / X-RateLimit-Reset. */
  retryAfterMs?: number
}

export class CartaApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly details: CartaApiErrorDetails = {},
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
  /** Sees each call's endpoint pattern, status and duration (deps.metrics.observeCarta). */
  observe?: CartaObserver
  /** Epoch ms used to turn an HTTP-date or epoch reset header into a wait (default: Date.now()). */
  now?: number
}

// --- endpoints ---------------------------------------------------------------------------------

export const USER_PATH = '/v1alpha1/user'
export const ISSUERS_PATH = '/v1alpha1/issuers'
export const capTablePath = (issuerId: string | number) =>
  `/v1alpha1/issuers/${encodeURIComponent(String(issuerId).trim())}/capitalizationTable`

/** GET {api}/v1alpha1/user (scope read_user_info). */
export async function fetchUser(
  app: CartaAppConfig,
  accessToken: string,
  options: ApiCallOptions = {},
): Promise<CartaUser> {
  const body = await getJson(app, accessToken, USER_PATH, 'user profile', options)
  return parseUser(body)
}

/** Carta's maximum page size for List Issuers (larger values are coerced to 50). */
export const ISSUERS_PAGE_SIZE = 50
/** Bound on pages followed (500 issuers): each page costs one request of the rate limit. */
export const ISSUERS_MAX_PAGES = 10

/** GET {api}/v1alpha1/issuers?pageSize=50, following nextPageToken (scope read_issuer_info). */
export async function listIssuers(
  app: CartaAppConfig,
  accessToken: string,
  options: ApiCallOptions & { maxPages?: number } = {},
): Promise<CartaIssuer[]> {
  const issuers: CartaIssuer[] = []
  const seen = new Set<string>()
  let pageToken: string | null = null
  for (let page = 0; page < (options.maxPages ?? ISSUERS_MAX_PAGES); page++) {
    const query = new URLSearchParams({ pageSize: String(ISSUERS_PAGE_SIZE) })
    if (pageToken) query.set('pageToken', pageToken)
    const body = await getJson(app, accessToken, `${ISSUERS_PATH}?${query}`, 'issuer list', options)
    const result = parseIssuerPage(body)
    for (const issuer of result.issuers) {
      if (seen.has(issuer.id)) continue
      seen.add(issuer.id)
      issuers.push(issuer)
    }
    // A token seen before would loop forever: stop (liberal, not trusting).
    if (!result.nextPageToken || result.nextPageToken === pageToken) break
    pageToken = result.nextPageToken
  }
  return issuers
}

/** GET {api}/v1alpha1/issuers/{issuerId}/capitalizationTable (scope read_issuer_capitalizationtablesummary). */
export async function fetchCapTableSummary(
  app: CartaAppConfig,
  accessToken: string,
  /** Carta's ids are protobuf int64: a string or a number is fine. */
  issuerId: string | number,
  options: ApiCallOptions = {},
): Promise<CapTableSummary> {
  const body = await getJson(app, accessToken, capTablePath(issuerId), 'issuer cap table', options)
  return parseCapTableSummary(body)
}

// --- parsing: user and issuers ------------------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

const text = (...values: unknown[]): string | null => {
  for (const v of values) if (typeof v === 'string' && v.trim()) return v.trim()
  return null
}

/** An id as Carta may send it: a string, or a number (protobuf int64 as JSON number). */
export function idOf(...values: unknown[]): string | null {
  for (const v of values) {
    if (typeof v === 'string' && v.trim()) return v.trim()
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  }
  return null
}

export function parseUser(body: unknown): CartaUser {
  if (!isObject(body)) throw new CartaApiError('malformed', 'user answer is not a JSON object')
  let b = body
  if (b.id === undefined && b.userId === undefined && b.user_id === undefined && isObject(b.user)) b = b.user
  const id = idOf(b.id, b.userId, b.user_id)
  if (!id) throw new CartaApiError('malformed', 'user answer has no id')
  const firstName = text(b.firstName, b.first_name, b.given_name)
  const lastName = text(b.lastName, b.last_name, b.family_name)
  const name = [firstName, lastName].filter(Boolean).join(' ') || text(b.name, b.fullName, b.full_name)
  return { id, email: text(b.email), firstName, lastName, name }
}

export function parseIssuers(body: unknown): CartaIssuer[] {
  return parseIssuerPage(body).issuers
}

/** One page of List Issuers: `{"issuers": [...], "nextPageToken": "…"}` and older spellings. */
export function parseIssuerPage(body: unknown): { issuers: CartaIssuer[]; nextPageToken: string | null } {
  const b = isObject(body) ? body : null
  const list = Array.isArray(body) ? body : [b?.issuers, b?.results, b?.data].find(Array.isArray)
  if (!Array.isArray(list)) throw new CartaApiError('malformed', 'issuers answer holds no list')
  const issuers: CartaIssuer[] = []
  for (const item of list) {
    if (!isObject(item)) continue
    const id = idOf(item.id, item.issuerId, item.issuer_id)
    if (id === null) continue
    const legalName = text(item.legalName, item.legal_name, item.name, item.doingBusinessAsName, item.dbaName)
    issuers.push({ id, legalName: legalName ?? `Issuer ${id}` })
  }
  return { issuers, nextPageToken: text(b?.nextPageToken, b?.next_page_token) }
}

// --- parsing: cap table -------------------------------------------------------------------------

export type CapTableRowKind = 'share_class' | 'option_pool' | 'warrant_block'

export interface CapTableRow {
  kind: CapTableRowKind
  id: string | null
  /** As Carta sent it; Carta's share class summaries carry no name, only shareClassId. */
  name: string | null
  /** The share class an option pool or warrant block converts into. */
  shareClassId: string | null
  outstanding: number | null
  fullyDiluted: number | null
  cashRaised: number | null
}

export interface CapTableNoteBlock {
  id: string | null
  name: string | null
  principal: number | null
  interest: number | null
  cashRaised: number | null
}

/** Carta's CapitalizationTable, normalized (numbers as numbers, absent values as null). */
export interface CapTableSummary {
  issuerId: string | null
  /** Only older or non-Carta shapes carry a name here; Carta's does not. */
  issuerName: string | null
  /** YYYY-MM-DD */
  asOfDate: string | null
  currency: string | null
  shareClasses: CapTableRow[]
  optionPools: CapTableRow[]
  warrantBlocks: CapTableRow[]
  noteBlocks: CapTableNoteBlock[]
  totals: { outstanding: number | null; fullyDiluted: number | null; cashRaised: number | null }
}

const DECIMAL = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/

/**
 * A number as Carta may send it: a JSON number, a decimal string ("5603645.00"), Carta's Decimal
 * wrapper `{"value": "…"}` or Money `{"currencyCode": …, "amount": {"value": "…"}}`.
 */
export function decimalOf(...values: unknown[]): number | null {
  for (const v of values) {
    if (typeof v === 'number' && Number.isFinite(v)) return v
    if (typeof v === 'string' && DECIMAL.test(v)) return Number(v)
    if (isObject(v)) {
      const inner = decimalOf(v.value, v.amount, v.units)
      if (inner !== null) return inner
    }
  }
  return null
}

const listOf = (o: Record<string, unknown>, ...keys: string[]): unknown[] | null => {
  for (const k of keys) if (Array.isArray(o[k])) return o[k] as unknown[]
  return null
}

const SHARE_CLASS_KEYS = ['shareClassSummaries', 'share_class_summaries', 'shareClasses', 'share_classes', 'classes']
const OPTION_POOL_KEYS = ['optionPoolSummaries', 'option_pool_summaries', 'optionPools', 'option_pools']
const WARRANT_KEYS = ['warrantBlockSummaries', 'warrant_block_summaries', 'warrantBlocks', 'warrant_blocks']
const NOTE_KEYS = ['noteBlockSummaries', 'note_block_summaries', 'noteBlocks', 'note_blocks']
const ALL_LIST_KEYS = [...SHARE_CLASS_KEYS, ...OPTION_POOL_KEYS, ...WARRANT_KEYS, ...NOTE_KEYS]

const hasCapTableList = (o: Record<string, unknown>) => ALL_LIST_KEYS.some((k) => Array.isArray(o[k]))

/** Where the cap table lives: Carta nests it under `capitalizationTable` (Get…Response envelope). */
function capTableRoot(body: Record<string, unknown>): Record<string, unknown> | null {
  const candidates = [
    body.capitalizationTable,
    body.capitalization_table,
    body.capTable,
    body.cap_table,
    body.data,
    body,
    body.summary, // an older shape put the whole table under "summary"
  ]
  for (const c of candidates) if (isObject(c) && hasCapTableList(c)) return c
  for (const c of candidates.slice(0, 6)) if (isObject(c) && isObject(c.summary)) return c
  return null
}

function row(kind: CapTableRowKind, r: Record<string, unknown>): CapTableRow {
  const idKeys = {
    share_class: [r.shareClassId, r.shareClassID, r.share_class_id],
    option_pool: [r.optionPoolId, r.optionPoolID, r.option_pool_id],
    warrant_block: [r.warrantBlockId, r.warrantBlockID, r.warrant_block_id],
  }[kind]
  return {
    kind,
    id: idOf(...idKeys, r.id),
    name: text(r.name, r.shareClassName, r.share_class_name, r.className, r.class_name, r.label, r.title),
    shareClassId: kind === 'share_class' ? null : idOf(r.shareClassId, r.shareClassID, r.share_class_id),
    outstanding: decimalOf(
      r.outstandingShares,
      r.outstanding_shares,
      r.outstandingEquityAwardDerivatives,
      r.outstanding_equity_award_derivatives,
      r.outstandingWarrants,
      r.outstanding_warrants,
      r.outstanding,
      r.issued,
      r.issuedShares,
    ),
    fullyDiluted: decimalOf(r.fullyDilutedShares, r.fully_diluted_shares, r.fullyDiluted, r.fully_diluted),
    cashRaised: decimalOf(r.cashRaised, r.cash_raised),
  }
}

const rows = (kind: CapTableRowKind, list: unknown[] | null): CapTableRow[] =>
  (list ?? []).filter(isObject).map((r) => row(kind, r))

/** Parses Carta's Get Capitalization Table answer (and older or flatter shapes). */
export function parseCapTableSummary(body: unknown): CapTableSummary {
  if (!isObject(body)) throw new CartaApiError('malformed', 'cap table answer is not a JSON object')
  const root = capTableRoot(body)
  if (!root) throw new CartaApiError('malformed', 'cap table answer holds no share classes or summary')
  const summary = isObject(root.summary) ? root.summary : {}
  const shareClasses = rows('share_class', listOf(root, ...SHARE_CLASS_KEYS))
  const optionPools = rows('option_pool', listOf(root, ...OPTION_POOL_KEYS))
  const warrantBlocks = rows('warrant_block', listOf(root, ...WARRANT_KEYS))
  const noteBlocks: CapTableNoteBlock[] = (listOf(root, ...NOTE_KEYS) ?? []).filter(isObject).map((n) => ({
    id: idOf(n.noteBlockId, n.noteBlockID, n.note_block_id, n.id),
    name: text(n.name),
    principal: decimalOf(n.principal),
    interest: decimalOf(n.interest),
    cashRaised: decimalOf(n.cashRaised, n.cash_raised),
  }))
  const sum = (list: CapTableRow[], key: 'outstanding' | 'fullyDiluted'): number | null =>
    list.some((r) => r[key] !== null) ? list.reduce((t, r) => t + (r[key] ?? 0), 0) : null
  const all = [...shareClasses, ...optionPools, ...warrantBlocks]
  const cash = isObject(summary.cashRaised)
    ? summary.cashRaised
    : isObject(summary.cash_raised)
      ? summary.cash_raised
      : {}
  const currencyCode = isObject(cash.currencyCode) ? cash.currencyCode.value : (cash.currencyCode ?? cash.currency_code)
  const issuer = isObject(root.issuer) ? root.issuer : {}
  const asOf = isObject(root.asOfDate) ? root.asOfDate.value : (root.asOfDate ?? root.as_of_date)
  return {
    issuerId: idOf(root.issuerId, root.issuer_id, body.issuerId, issuer.id),
    issuerName: text(root.legalName, root.legal_name, root.issuerName, root.issuer_name, issuer.legalName, issuer.name),
    asOfDate: typeof asOf === 'string' && /^\d{4}-\d{2}-\d{2}/.test(asOf) ? asOf.slice(0, 10) : null,
    currency: text(currencyCode, root.currency),
    shareClasses,
    optionPools,
    warrantBlocks,
    noteBlocks,
    totals: {
      // Carta: summary.outstandingShares is the sum over share classes; fullyDilutedShares adds
      // option pools and warrants (https://docs.carta.com/carta/docs/calculating-cap-table-percentages).
      outstanding:
        decimalOf(
          summary.outstandingShares,
          summary.outstanding_shares,
          root.totalOutstanding,
          root.total_outstanding,
        ) ?? sum(shareClasses, 'outstanding'),
      fullyDiluted:
        decimalOf(
          summary.fullyDilutedShares,
          summary.fully_diluted_shares,
          root.totalFullyDiluted,
          root.total_fully_diluted,
        ) ?? sum(all, 'fullyDiluted'),
      cashRaised: decimalOf(summary.cashRaised, summary.cash_raised),
    },
  }
}

// --- errors and rate limits ---------------------------------------------------------------------

/** Carta's error body: `{"code", "message", "details": [{"@type": "…ErrorInfo", "reason"}]}`. */
export function parseErrorBody(body: unknown): { code?: number; message?: string; reasons: string[]; error?: string } {
  if (!isObject(body)) return { reasons: [] }
  const reasons: string[] = []
  if (Array.isArray(body.details))
    for (const d of body.details) if (isObject(d) && typeof d.reason === 'string' && d.reason) reasons.push(d.reason)
  const nested = isObject(body.error) ? body.error : null // {"error": {"code", "message", "details"}}
  if (nested && Array.isArray(nested.details))
    for (const d of nested.details) if (isObject(d) && typeof d.reason === 'string' && d.reason) reasons.push(d.reason)
  const code =
    typeof body.code === 'number' ? body.code : nested && typeof nested.code === 'number' ? nested.code : undefined
  const message = text(body.message, nested?.message, body.error_description) ?? undefined
  const error = typeof body.error === 'string' ? body.error : undefined
  return {
    ...(code === undefined ? {} : { code }),
    ...(message ? { message } : {}),
    reasons,
    ...(error ? { error } : {}),
  }
}

/** Parameters of a `Bearer` challenge (RFC 6750 §3), lower-cased names. */
export function bearerChallenge(header: string | null): Record<string, string> | null {
  if (!header) return null
  const m = /(?:^|,)\s*Bearer\b(.*)$/i.exec(header)
  if (!m) return null
  const params: Record<string, string> = {}
  for (const p of m[1]!.matchAll(/([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1')
  }
  return params
}

export interface RateLimitInfo {
  limit: number | null
  remaining: number | null
  /** When the window resets, as a wait in ms from `now`. */
  resetMs: number | null
  /** How long to wait before retrying: Retry-After first, else the reset. */
  retryAfterMs: number | null
}

// A reset larger than this many seconds cannot be a wait: it is an epoch timestamp.
const EPOCH_SECONDS_FLOOR = 1e9
const EPOCH_MS_FLOOR = 1e12

/** Seconds to wait, or an epoch time (seconds or ms), or an HTTP-date (RFC 9110 §5.6.7), as ms from now. */
export function waitMs(value: string | null | undefined, now: number, allowDate: boolean): number | null {
  const v = value?.trim()
  if (!v) return null
  if (/^[-+]?\d+(\.\d+)?$/.test(v)) {
    const n = Number(v)
    if (n >= EPOCH_MS_FLOOR) return Math.max(0, Math.round(n - now))
    if (n >= EPOCH_SECONDS_FLOOR) return Math.max(0, Math.round(n * 1000 - now))
    return Math.max(0, Math.round(n * 1000))
  }
  if (!allowDate) return null
  const at = Date.parse(v)
  return Number.isFinite(at) ? Math.max(0, at - now) : null
}

const firstNumber = (v: string | null): number | null => {
  const m = /-?\d+(\.\d+)?/.exec(v ?? '')
  return m ? Number(m[0]) : null
}

/**
 * Reads Carta's rate-limit headers (RateLimit-*, X-RateLimit-*-Second/-Minute) and, liberally,
 * Retry-After (RFC 9110 §10.2.3), X-RateLimit-Limit/Remaining/Reset, and the IETF draft's
 * structured `RateLimit: limit=…, remaining=…, reset=…`.
 */
export function parseRateLimit(headers: Headers, now = Date.now()): RateLimitInfo {
  const structured = headers.get('ratelimit')
  const param = (name: string) =>
    structured ? (new RegExp(`(?:^|[;,\\s])${name}=(\\d+)`).exec(structured)?.[1] ?? null) : null
  const limit =
    firstNumber(headers.get('ratelimit-limit')) ??
    firstNumber(headers.get('x-ratelimit-limit')) ??
    firstNumber(headers.get('x-ratelimit-limit-second')) ??
    firstNumber(headers.get('x-ratelimit-limit-minute')) ??
    firstNumber(param('limit'))
  const remainingValues = [
    headers.get('ratelimit-remaining'),
    headers.get('x-ratelimit-remaining'),
    headers.get('x-ratelimit-remaining-second'),
    headers.get('x-ratelimit-remaining-minute'),
    param('remaining'),
  ]
    .map(firstNumber)
    .filter((n): n is number => n !== null)
  const remaining = remainingValues.length ? Math.min(...remainingValues) : null
  const resetMs =
    waitMs(headers.get('ratelimit-reset'), now, false) ??
    waitMs(headers.get('x-ratelimit-reset'), now, true) ??
    waitMs(param('reset') ?? param('t'), now, false)
  const retryAfterMs = waitMs(headers.get('retry-after'), now, true) ?? resetMs
  return { limit, remaining, resetMs, retryAfterMs }
}

/** A Carta answer as received: status, headers, body text and (when it parses) JSON. */
export interface CartaResponse {
  status: number
  headers: Headers
  text: string
  /** undefined when the body is empty or not JSON. */
  json: unknown
}

/** The path as a metric label: no query, and no issuer id (src/metrics.ts: low cardinality). */
export function endpointPattern(path: string): string {
  return path.split('?')[0]!.replace(/^(\/v1alpha1\/issuers\/)[^/]+/, '$1{issuerId}')
}

/** GET {api}{path} with the bearer token; network failures and timeouts throw 'unavailable'. */
export async function requestCarta(
  app: CartaAppConfig,
  accessToken: string,
  path: string,
  options: ApiCallOptions = {},
): Promise<CartaResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const started = performance.now()
  const observe = (status: CartaCall['status']) =>
    options.observe?.({ endpoint: endpointPattern(path), status, seconds: secondsSince(started) })
  try {
    const response = await fetch(`${app.apiBaseUrl}${path}`, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    })
    const body = await response.text()
    let json: unknown
    try {
      json = body ? JSON.parse(body) : undefined
    } catch {
      json = undefined
    }
    observe(response.status)
    return { status: response.status, headers: response.headers, text: body, json }
  } catch (err) {
    const e = err as { name?: string; cause?: { code?: string; name?: string } }
    const timeout = e.name === 'TimeoutError' || e.name === 'AbortError' || e.cause?.name === 'TimeoutError'
    observe(timeout ? 'timeout' : 'unreachable')
    if (timeout)
      throw new CartaApiError('unavailable', `Carta API ${path} did not answer in time`, { timeout: true, path })
    throw new CartaApiError(
      'unavailable',
      `Carta API ${path} could not be reached (${e.cause?.code ?? 'network error'})`,
      {
        path,
      },
    )
  }
}

/** The error a non-2xx answer means, or null for a 2xx. Liberal: Carta's body, RFC 6750, or neither. */
export function apiErrorFor(
  response: CartaResponse,
  path: string,
  resource: string,
  now = Date.now(),
): CartaApiError | null {
  const { status } = response
  if (status >= 200 && status < 300) return null
  const body = parseErrorBody(response.json)
  const challenge = bearerChallenge(response.headers.get('www-authenticate'))
  const rfc6750 = challenge?.error ?? body.error
  let reason = body.reasons[0]
  if (body.reasons.includes(INSUFFICIENT_SCOPE) || rfc6750 === 'insufficient_scope') reason = INSUFFICIENT_SCOPE
  const details: CartaApiErrorDetails = {
    status,
    path,
    resource,
    ...(reason ? { reason } : {}),
    ...(body.code === undefined ? {} : { code: body.code }),
    ...(challenge?.scope ? { scope: challenge.scope } : {}),
  }
  if (status === 401) return new CartaApiError('unauthorized', `Carta API ${path} answered 401`, details)
  if (status === 403) {
    const why = reason ? ` (${reason}${challenge?.scope ? `, needs ${challenge.scope}` : ''})` : ''
    return new CartaApiError('forbidden', `Carta API ${path} answered 403${why}`, details)
  }
  if (status === 404)
    return new CartaApiError('not_found', `Carta API ${path} answered 404: no such ${resource}`, details)
  if (status === 429) {
    const retryAfterMs = parseRateLimit(response.headers, now).retryAfterMs
    return new CartaApiError('rate_limited', `Carta API ${path} answered 429 (rate limit)`, {
      ...details,
      ...(retryAfterMs === null ? {} : { retryAfterMs }),
    })
  }
  if (status >= 500) return new CartaApiError('unavailable', `Carta API ${path} answered ${status}`, details)
  return new CartaApiError('malformed', `Carta API ${path} answered unexpected ${status}`, details)
}

async function getJson(
  app: CartaAppConfig,
  accessToken: string,
  path: string,
  resource: string,
  options: ApiCallOptions,
): Promise<unknown> {
  const response = await requestCarta(app, accessToken, path, options)
  const error = apiErrorFor(response, path, resource, options.now)
  if (error) throw error
  if (response.json === undefined)
    throw new CartaApiError('malformed', `Carta API ${path} answered with something that is not JSON`, {
      status: response.status,
      path,
      resource,
    })
  return response.json
}
