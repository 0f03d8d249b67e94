// The mail job (src/jobs/index.ts): each pass queues the next chunks of new campaigns, due
// reminders, then sends due outbox rows for up to 20 s. Every 5 s, and when kicked after a
// campaign is created.
import type { AppDeps } from '../deps.js'
import type { Job } from '../jobs/runner.js'
import { expandCampaigns, queueReminders } from './campaigns.js'
import { processOutbox } from './outbox.js'
import { createMailer, type Mailer } from './transport.js'

export const MAIL_INTERVAL_MS = 5_000

export function mailJob(deps: Pick<AppDeps, 'config' | 'db' | 'clock'>): Job {
  let mailer: Mailer | null | undefined
  return {
    everyMs: MAIL_INTERVAL_MS,
    run: async (log) => {
      mailer ??= createMailer(deps.config.mail)
      if (!mailer) return { queued: 0, reminders: 0 }
      const queued = await expandCampaigns(deps.db, () => deps.clock.now())
      const reminders = await queueReminders(deps.db, deps.clock.now())
      const sent = await processOutbox({ ...deps, mailer, log }, { budgetMs: 20_000 })
      if (queued || reminders || sent.sent || sent.failed || sent.retry || sent.interrupted)
        log.info({ queued, reminders, ...sent }, 'mail pass')
      return { queued, reminders, ...sent }
    },
    stop: async () => {
      mailer?.close()
      mailer = undefined
    },
  }
}
