// Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme"): the secret
// is `whsec_` + base64 of random bytes; the signed content is `${webhook-id}.${webhook-timestamp}.${body}`,
// signed with HMAC-SHA256 under the decoded secret; the header is `v1,<base64 signature>`.
import { createHmac, randomBytes } from 'node:crypto'

export const SECRET_PREFIX = 'whsec_'

export function newWebhookSecret(): string {
  // 24 bytes: within the 24–64 byte range the specification recommends.
  return `${SECRET_PREFIX}${randomBytes(24).toString('base64')}`
}

export function signWebhook(secret: string, messageId: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64')
  const mac = createHmac('sha256', key).update(`${messageId}.${timestampSeconds}.${body}`).digest('base64')
  return `v1,${mac}`
}

/** The headers of one attempt (webhook-timestamp is the time of the attempt, in seconds). */
export function webhookHeaders(secret: string, messageId: string, nowMs: number, body: string): Record<string, string> {
  const timestamp = Math.floor(nowMs / 1000)
  return {
    'content-type': 'application/json',
    'webhook-id': messageId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, messageId, timestamp, body),
  }
}
