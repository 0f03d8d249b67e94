// What the rollout page's email section shows: the delivery health, the campaigns, the funnel
// and where the email buttons lead (views/admin/rollout-mail.eta, rollout-funnel.eta).
import type { Kysely } from 'kysely'
import type { Config } from '../config.js'
import type { Database } from '../db/schema.js'
import { type LackingFilter, filterQuery } from '../rollouts/lacking.js'
import { rolloutCampaigns } from './campaigns.js'
import { FUNNEL_LABELS, FUNNEL_STEPS, rolloutFunnel } from './funnel.js'
import { mailHealth } from './outbox.js'

export async function rolloutMailPanel(
  db: Kysely<Database>,
  config: Config,
  rolloutId: number,
  filter: LackingFilter,
  now: number,
) {
  const [health, campaigns, funnel] = await Promise.all([
    mailHealth(db, config),
    rolloutCampaigns(db, rolloutId),
    rolloutFunnel(db, rolloutId, now),
  ])
  const max = Math.max(1, ...Object.values(funnel))
  const query = filterQuery({ ...filter, sort: 'user' })
  return {
    health,
    campaigns,
    funnel: FUNNEL_STEPS.map((step) => ({
      step,
      label: FUNNEL_LABELS[step],
      count: funnel[step],
      max,
    })),
    everyoneHref: `/admin/rollouts/${rolloutId}/mail?selection=everyone`,
    filterHref: query ? `/admin/rollouts/${rolloutId}/mail?selection=filter&${query}` : null,
    reminderDays: config.mail.reminderDays,
  }
}
