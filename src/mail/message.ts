// The reauthorization email: a plain-text and an HTML part from Eta templates (views/mail/), the
// person's name, the permissions in the same plain words as the link's page (src/scopes.ts), why
// (the rollout), the one-click link and its expiry, and the one-click opt-out of RFC 8058.
import { describeScopes } from '../scopes.js'
import { formatTime } from '../time.js'
import { eta } from '../views.js'
import type { OutgoingMessage } from './transport.js'

export const PRODUCT_NAME = 'Scope Ledger'

export interface LinkMessageInput {
  to: string
  name: string | null
  rolloutName: string
  /** Scopes the person is asked to add. */
  added: string[]
  url: string
  expiresAt: number
  unsubscribeUrl: string
  /** 0: the first email; 1..: reminders. */
  step: number
}

export function linkMessage(input: LinkMessageInput): OutgoingMessage {
  const reminder = input.step > 0
  const subject = `${reminder ? 'Reminder: ' : ''}${input.rolloutName}: please update your Carta permissions`
  const data = {
    subject,
    greeting: input.name ? `Hello ${input.name},` : 'Hello,',
    reminder,
    why: input.rolloutName,
    added: describeScopes(input.added),
    url: input.url,
    expires: formatTime(input.expiresAt),
    unsubscribeUrl: input.unsubscribeUrl,
    product: PRODUCT_NAME,
  }
  return {
    to: input.to,
    subject,
    text: eta.render('mail/link-text', data),
    html: eta.render('mail/link-html', data),
    headers: {
      // RFC 2369 and RFC 8058 §3.1: the HTTPS URI a mail client POSTs "List-Unsubscribe=One-Click" to.
      'List-Unsubscribe': `<${input.unsubscribeUrl}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      // RFC 3834 §5: no out-of-office replies to an automated message.
      'Auto-Submitted': 'auto-generated',
    },
  }
}
