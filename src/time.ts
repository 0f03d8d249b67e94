// Times as the pages and files show them. Epoch milliseconds everywhere inside.

export const HOUR_MS = 60 * 60 * 1000
export const DAY_MS = 24 * HOUR_MS

/** "2025-03-01 10:00 UTC" ("2025-03-01 10:00:07 UTC" with seconds), or "—" when there is no time. */
export function formatTime(ms: number | null | undefined, precision: 'minutes' | 'seconds' = 'minutes'): string {
  if (ms === null || ms === undefined) return '—'
  return `${new Date(ms)
    .toISOString()
    .slice(0, precision === 'seconds' ? 19 : 16)
    .replace('T', ' ')} UTC`
}

/** "2025-03-01" (UTC). */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** True when `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  if (!zone || zone.length > 64) return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/** The parts of `ms`'s wall-clock time in `timeZone` (year, month, day, hour, minute, second). */
export function wallClock(ms: number, timeZone: string): Record<string, string> {
  return Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  )
}

/** "2025-03-01 11:00:07" as a clock in `timeZone` shows it (the page names the zone once). */
export function formatTimeIn(ms: number, timeZone: string): string {
  const p = wallClock(ms, timeZone)
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`
}

/** How far `timeZone` is ahead of UTC at `ms`, in ms. */
function zoneOffset(ms: number, timeZone: string): number {
  const p = wallClock(ms, timeZone)
  const asUtc = Date.UTC(
    Number(p.year),
    Number(p.month) - 1,
    Number(p.day),
    Number(p.hour),
    Number(p.minute),
    Number(p.second),
  )
  return asUtc - Math.floor(ms / 1000) * 1000
}

/** The instant a day (epoch ms of its UTC midnight, as parseDay gives) starts in `timeZone`. */
export function dayStartIn(utcMidnight: number, timeZone: string): number {
  const first = utcMidnight - zoneOffset(utcMidnight, timeZone)
  // Once more at the guess: right across a daylight-saving change too.
  return utcMidnight - zoneOffset(first, timeZone)
}
