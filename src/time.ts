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
