// Report messages through the outbox (src/README.md, "Email"): the reports module hands over a
// rendered message and its readers; each becomes one 'report' row whose content is its payload
// (the worker sends it as stored). The dedupe key is per run slot and reader, so a run slot that
// is retried, here or on another instance, never mails anyone twice.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { OutgoingMessage } from './transport.js'

export function reportDedupeKey(slotKey: string, address: string): string {
  return `report:${slotKey}:${address.toLowerCase()}`
}

/** Queues one message per recipient; returns how many rows were new (already queued ones are left alone). */
export async function queueReportEmails(
  db: Kysely<Database>,
  input: { slotKey: string; recipients: string[]; message: Omit<OutgoingMessage, 'to'>; now: number },
): Promise<number> {
  if (input.recipients.length === 0) return 0
  const payload = JSON.stringify(input.message)
  const rows = await db
    .insertInto('mail_outbox')
    .values(
      input.recipients.map((to) => ({
        kind: 'report' as const,
        dedupe_key: reportDedupeKey(input.slotKey, to),
        campaign_id: null,
        rollout_id: null,
        user_id: null,
        to_address: to,
        payload,
        next_attempt_at: input.now,
        lock_owner: null,
        lock_until: null,
        link_id: null,
        message_id: null,
        created_at: input.now,
        sent_at: null,
        updated_at: input.now,
        reason: null,
      })),
    )
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id')
    .execute()
  return rows.length
}
