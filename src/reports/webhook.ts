// Optional delivery of the summary to a Slack-incoming-webhook compatible URL. Slack carries the
// secret in the URL path, so only the origin is ever logged or stored.
import type { ReportDocument } from './formats.js'
import { localTime } from './formats.js'
import { COVERAGE_FORMULA, formatCoverage } from '../rollouts/coverage.js'

export interface DeliveryOptions {
  /** Per attempt. */
  timeoutMs: number
  attempts: number
  /** First retry waits this long, then doubles (exponential backoff). */
  backoffMs: number
}

export const defaultDelivery: DeliveryOptions = { timeoutMs: 10_000, attempts: 3, backoffMs: 1_000 }

export interface DeliveryResult {
  ok: boolean
  attempts: number
  error: string | null
}

export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(invalid URL)'
  }
}

/** Slack's incoming-webhook body: `text` (fallback, notifications) plus Block Kit `blocks`. */
export function webhookBody(doc: ReportDocument, reportUrl: string | null): { text: string; blocks: unknown[] } {
  const when = localTime(doc.takenAt, doc.timeZone)
  const lines = doc.rollouts.map((r) => {
    const lacking = Object.entries(r.lackingByScope)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `\`${s}\` ${n}`)
      .join(', ')
    return `*${r.name}*: ${formatCoverage(r.coveragePct)} covered (${r.covered} of ${r.members} members), ${r.lacking} lacking, ${r.reconnect} to reconnect${lacking ? ` — lacking: ${lacking}` : ''}`
  })
  const definition = `Coverage = ${COVERAGE_FORMULA} (users who must reconnect included).`
  const text = `Scope coverage report ${when}\n${lines.join('\n') || 'No active rollout.'}\n${definition}`
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: `Scope coverage report ${when}` } },
    { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') || 'No active rollout.' } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: definition }] },
  ]
  if (reportUrl)
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${reportUrl}|Open the reports page>` }] })
  return { text, blocks }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** POSTs the body with a timeout per attempt and exponential backoff; never throws. */
export async function deliver(
  url: string,
  body: unknown,
  options: DeliveryOptions = defaultDelivery,
): Promise<DeliveryResult> {
  let error = 'not attempted'
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      })
      await res.body?.cancel().catch(() => {})
      if (res.ok) return { ok: true, attempts: attempt, error: null }
      error = `HTTP ${res.status} from ${webhookOrigin(url)}`
      // 4xx other than 429 will not get better by retrying (bad URL or payload).
      if (res.status < 500 && res.status !== 429) return { ok: false, attempts: attempt, error }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } }
      error =
        e.name === 'TimeoutError'
          ? `no answer from ${webhookOrigin(url)} within ${options.timeoutMs} ms`
          : `${webhookOrigin(url)}: ${e.cause?.code ?? e.message}`
    }
    if (attempt < options.attempts) await sleep(options.backoffMs * 2 ** (attempt - 1))
  }
  return { ok: false, attempts: options.attempts, error }
}
