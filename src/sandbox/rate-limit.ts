// The sandbox's API rate limit, at Carta's documented numbers by default: bursts of 10 requests a
// second, 300 a minute, per client; beyond that 429 {"message": "API rate limit exceeded"}, and
// RateLimit-* / X-RateLimit-*-Second/-Minute headers on every answer
// (https://docs.carta.com/carta/docs/rate-limiting). No I/O; the clock is injected.

export interface RateLimitSettings {
  /** Requests per second per key; 0 = no per-second limit. */
  perSecond: number
  /** Requests per minute per key; 0 = no per-minute limit. */
  perMinute: number
}

export const CARTA_RATE_LIMIT: Readonly<RateLimitSettings> = Object.freeze({ perSecond: 10, perMinute: 300 })

export interface RateLimitDecision {
  allowed: boolean
  /** Headers for the answer (none when the limit is off). */
  headers: Record<string, string>
  /** Seconds until a refused request may be retried. */
  retryAfterSeconds?: number
}

interface Window {
  start: number
  count: number
}

const PERIODS = [
  { name: 'Second', ms: 1000, setting: 'perSecond' },
  { name: 'Minute', ms: 60_000, setting: 'perMinute' },
] as const

/**
 * Fixed windows per key, each opened by the first request after the previous one ended (so a test
 * that stays within a window is deterministic). A refused request does not count.
 */
export class RateLimiter {
  private windows = new Map<string, Window[]>()
  private settings: RateLimitSettings

  constructor(
    settings: RateLimitSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.settings = { ...settings }
  }

  get current(): RateLimitSettings {
    return { ...this.settings }
  }

  get enabled(): boolean {
    return this.settings.perSecond > 0 || this.settings.perMinute > 0
  }

  /** New limits; every window starts afresh. */
  configure(settings: RateLimitSettings): void {
    this.settings = { ...settings }
    this.windows.clear()
  }

  reset(): void {
    this.windows.clear()
  }

  take(key: string): RateLimitDecision {
    if (!this.enabled) return { allowed: true, headers: {} }
    const now = this.now()
    if (this.windows.size > 10_000) this.prune(now)
    let windows = this.windows.get(key)
    if (!windows) {
      windows = PERIODS.map(() => ({ start: now, count: 0 }))
      this.windows.set(key, windows)
    }
    const active = PERIODS.map((p, i) => {
      const w = windows[i]!
      if (now >= w.start + p.ms) {
        w.start = now
        w.count = 0
      }
      return { ...p, limit: this.settings[p.setting], window: w }
    }).filter((p) => p.limit > 0)
    const exceeded = active.filter((p) => p.window.count >= p.limit)
    if (exceeded.length === 0) for (const p of active) p.window.count++
    const secondsLeft = (p: (typeof active)[number]) => Math.max(1, Math.ceil((p.window.start + p.ms - now) / 1000))
    const headers: Record<string, string> = {}
    for (const p of active) {
      headers[`X-RateLimit-Limit-${p.name}`] = String(p.limit)
      headers[`X-RateLimit-Remaining-${p.name}`] = String(Math.max(0, p.limit - p.window.count))
    }
    // RateLimit-*: the window closest to its limit (ties: the shorter one), as Carta's example shows.
    const tightest = [...active].sort(
      (a, b) => a.limit - a.window.count - (b.limit - b.window.count) || a.ms - b.ms,
    )[0]!
    headers['RateLimit-Limit'] = String(tightest.limit)
    headers['RateLimit-Remaining'] = String(Math.max(0, tightest.limit - tightest.window.count))
    if (exceeded.length === 0) {
      headers['RateLimit-Reset'] = String(secondsLeft(tightest))
      return { allowed: true, headers }
    }
    const retryAfterSeconds = Math.max(...exceeded.map(secondsLeft))
    headers['RateLimit-Reset'] = String(retryAfterSeconds)
    return { allowed: false, headers, retryAfterSeconds }
  }

  private prune(now: number): void {
    for (const [key, windows] of this.windows)
      if (windows.every((w, i) => now >= w.start + PERIODS[i]!.ms)) this.windows.delete(key)
  }
}
