// Table types of email (migrations/0010_mail.ts). Owned by the mail module.
import type { Generated } from 'kysely'
import type { Millis } from '../db/schema.js'

export type CampaignSelection = 'everyone' | 'filter' | 'users'

export interface MailCampaignTable {
  id: Generated<number>
  rollout_id: number
  selection: CampaignSelection
  /** The lacking list's filter (JSON) when selection is 'filter'. */
  filter: Generated<string>
  /** The ticked user ids (JSON array) when selection is 'users'. */
  user_ids: string | null
  status: Generated<'active' | 'paused'>
  /** Days after the first email, space separated; empty: no reminders. */
  reminder_days: Generated<string>
  expand_status: Generated<'expanding' | 'done'>
  expand_cursor: string | null
  expand_lock_owner: string | null
  expand_lock_until: Millis | null
  queued: Generated<number>
  skipped_no_email: Generated<number>
  skipped_opted_out: Generated<number>
  skipped_covered: Generated<number>
  skipped_already: Generated<number>
  created_by: string
  created_at: Millis
  paused_at: Millis | null
}

export type OutboxStatus = 'queued' | 'sending' | 'sent' | 'failed' | 'skipped'

export interface MailOutboxTable {
  id: Generated<number>
  kind: 'link' | 'report'
  /** "link:<rollout>:<user>:<step>" (unique): one step of a rollout reaches a person once. */
  dedupe_key: string | null
  campaign_id: number | null
  rollout_id: number | null
  user_id: number | null
  /** 0: the first email; 1..n: reminders. */
  step: Generated<number>
  to_address: string
  /** A report message's subject, body and attachment (JSON); link messages are rendered when sent. */
  payload: string | null
  status: Generated<OutboxStatus>
  /** Why it was skipped, or the SMTP server's reply / the error of the last failed attempt. */
  reason: string | null
  attempts: Generated<number>
  next_attempt_at: Millis
  lock_owner: string | null
  lock_until: Millis | null
  link_id: number | null
  message_id: string | null
  created_at: Millis
  sent_at: Millis | null
  updated_at: Millis
}

export interface MailOptOutTable {
  user_id: number
  at: Millis
  source: 'one-click' | 'page'
}

export interface MailTables {
  mail_campaigns: MailCampaignTable
  mail_outbox: MailOutboxTable
  mail_opt_outs: MailOptOutTable
}
