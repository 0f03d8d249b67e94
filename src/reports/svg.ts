// Server-rendered SVG trend of coverage % over time: axes, gridlines, labels, one point per
// snapshot with a <title> tooltip. Presentation attributes only (no inline style: the CSP forbids
// it) and no script, so it renders anywhere, JavaScript or not.
import { escapeHtml, localStamp } from './formats.js'
import type { TrendPoint } from './runs.js'

const W = 640
const H = 240
const M = { top: 16, right: 20, bottom: 44, left: 48 }

export function trendSvg(points: TrendPoint[], options: { title: string; timeZone: string }): string {
  const plotted = points.filter((p): p is TrendPoint & { coveragePct: number } => p.coveragePct !== null)
  const iw = W - M.left - M.right
  const ih = H - M.top - M.bottom
  const t0 = plotted[0]?.takenAt ?? 0
  const t1 = plotted[plotted.length - 1]?.takenAt ?? 0
  const x = (t: number) => M.left + (t1 === t0 ? iw / 2 : ((t - t0) / (t1 - t0)) * iw)
  const y = (pct: number) => M.top + ih - (pct / 100) * ih
  const f = (v: number) => v.toFixed(1)
  const label = (t: number) => {
    const [date, hhmm] = localStamp(t, options.timeZone)
    return [date, `${hhmm.slice(0, 2)}:${hhmm.slice(2)}`]
  }

  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-labelledby="t">`,
    `<title>${escapeHtml(options.title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
  )
  for (const tick of [0, 25, 50, 75, 100]) {
    parts.push(
      `<line x1="${M.left}" y1="${f(y(tick))}" x2="${W - M.right}" y2="${f(y(tick))}" stroke="${tick === 0 ? '#5b6475' : '#e3e7ee'}" stroke-width="1"/>`,
      `<text x="${M.left - 6}" y="${f(y(tick) + 4)}" text-anchor="end" font-size="11" fill="#5b6475" font-family="system-ui, sans-serif">${tick}%</text>`,
    )
  }
  parts.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ih}" stroke="#5b6475" stroke-width="1"/>`)
  parts.push(
    `<text x="14" y="${M.top + ih / 2}" transform="rotate(-90 14 ${M.top + ih / 2})" text-anchor="middle" font-size="11" fill="#5b6475" font-family="system-ui, sans-serif">coverage</text>`,
  )

  if (plotted.length === 0) {
    parts.push(
      `<text x="${M.left + iw / 2}" y="${M.top + ih / 2}" text-anchor="middle" font-size="13" fill="#5b6475" font-family="system-ui, sans-serif">No coverage measured yet</text>`,
    )
  } else {
    // Time labels: first, last and (when there is room) the middle snapshot.
    const labelled =
      plotted.length > 2
        ? [plotted[0]!, plotted[Math.floor((plotted.length - 1) / 2)]!, plotted[plotted.length - 1]!]
        : plotted
    for (const [i, p] of labelled.entries()) {
      const anchor = labelled.length === 1 ? 'middle' : i === 0 ? 'start' : i === labelled.length - 1 ? 'end' : 'middle'
      const [date, time] = label(p.takenAt)
      parts.push(
        `<line x1="${f(x(p.takenAt))}" y1="${M.top + ih}" x2="${f(x(p.takenAt))}" y2="${M.top + ih + 4}" stroke="#5b6475"/>`,
        `<text x="${f(x(p.takenAt))}" y="${M.top + ih + 17}" text-anchor="${anchor}" font-size="11" fill="#5b6475" font-family="system-ui, sans-serif">${date}</text>`,
        `<text x="${f(x(p.takenAt))}" y="${M.top + ih + 31}" text-anchor="${anchor}" font-size="11" fill="#5b6475" font-family="system-ui, sans-serif">${time}</text>`,
      )
    }
    if (plotted.length > 1) {
      parts.push(
        `<polyline fill="none" stroke="#1f5eff" stroke-width="2" points="${plotted.map((p) => `${f(x(p.takenAt))},${f(y(p.coveragePct))}`).join(' ')}"/>`,
      )
    }
    for (const p of plotted) {
      const [date, time] = label(p.takenAt)
      parts.push(
        `<circle cx="${f(x(p.takenAt))}" cy="${f(y(p.coveragePct))}" r="3.5" fill="#1f5eff"><title>${date} ${time}: ${p.coveragePct.toFixed(1)}% (${p.covered} of ${p.members})</title></circle>`,
      )
    }
    const last = plotted[plotted.length - 1]!
    parts.push(
      `<text x="${f(Math.min(x(last.takenAt), W - M.right))}" y="${f(Math.max(y(last.coveragePct) - 8, M.top + 10))}" text-anchor="end" font-size="12" font-weight="700" fill="#1d2330" font-family="system-ui, sans-serif">${last.coveragePct.toFixed(1)}%</text>`,
    )
  }
  parts.push('</svg>')
  return parts.join('\n')
}
