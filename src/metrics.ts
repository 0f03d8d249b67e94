// The application's Prometheus metrics (prom-client): one Registry per app, built with AppDeps
// (src/deps.ts), never in module state, so several apps in one process (the tests) keep theirs
// apart. Code that counts something (a refresh, a Carta call) takes it from its deps; numbers that
// live in the database (grants, queues, report runs, rollout builds) are gauges read at scrape time
// from the query list in src/http/plugins/metric-gauges.ts. Labels are low cardinality: route
// patterns, app keys, outcomes — never a user id, an issuer id or a URL.
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'

/** One call to Carta as the metrics see it: an endpoint pattern, its outcome and its duration. */
export interface CartaCall {
  /** A pattern such as `/v1alpha1/issuers/{issuerId}/capitalizationTable` or `oauth:token`. */
  endpoint: string
  /** The HTTP status, or why there is none. */
  status: number | 'timeout' | 'unreachable'
  seconds: number
}

export type CartaObserver = (call: CartaCall) => void

export interface AppMetrics {
  registry: Registry
  httpDuration: Histogram<'method' | 'route' | 'status_code'>
  /** Token refreshes by outcome: refreshed, invalid_grant, rotated_elsewhere, failed, no_refresh_token. */
  refreshes: Counter<'outcome'>
  /** Revocation attempts at Carta that failed (the row stays queued for a retry, or is given up). */
  revocationFailures: Counter<'app'>
  cartaDuration: Histogram<'endpoint' | 'status'>
  observeCarta: CartaObserver
}

export function createMetrics(): AppMetrics {
  const registry = new Registry()
  // The process's own health (CPU, resident memory, heap, event-loop lag, open handles), with the
  // names every Node dashboard expects (process_*, nodejs_*); read at scrape time.
  collectDefaultMetrics({ register: registry })
  const httpDuration = new Histogram({
    name: 'scope_ledger_http_request_duration_seconds',
    help: 'HTTP request durations by route pattern, method and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const refreshes = new Counter({
    name: 'scope_ledger_token_refreshes_total',
    help: 'Access token refreshes by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  const revocationFailures = new Counter({
    name: 'scope_ledger_revocation_failures_total',
    help: 'Token revocations at Carta that failed, by app key.',
    labelNames: ['app'] as const,
    registers: [registry],
  })
  const cartaDuration = new Histogram({
    name: 'scope_ledger_carta_request_duration_seconds',
    help: 'Calls to Carta (API and OAuth endpoints) by endpoint pattern and status (timeout, unreachable).',
    labelNames: ['endpoint', 'status'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  })
  const cartaErrors = new Counter({
    name: 'scope_ledger_carta_errors_total',
    help: 'Calls to Carta that failed (no answer, or a 4xx/5xx status) by endpoint and status.',
    labelNames: ['endpoint', 'status'] as const,
    registers: [registry],
  })
  const cartaRateLimited = new Counter({
    name: 'scope_ledger_carta_rate_limited_total',
    help: 'Calls to Carta answered 429 Too Many Requests, by endpoint.',
    labelNames: ['endpoint'] as const,
    registers: [registry],
  })
  const observeCarta: CartaObserver = ({ endpoint, status, seconds }) => {
    const labels = { endpoint, status: String(status) }
    cartaDuration.observe(labels, seconds)
    if (typeof status !== 'number' || status >= 400) cartaErrors.inc(labels)
    if (status === 429) cartaRateLimited.inc({ endpoint })
  }
  return { registry, httpDuration, refreshes, revocationFailures, cartaDuration, observeCarta }
}

/** Seconds since `startMs` (performance.now() based), for observers. */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000
}
