// `npm run cli -- send-links <rollout id> [--scope S] [--app KEY] [--dry-run] [--wait]`: emails the
// reauthorization links of a rollout's lacking list (all of it, or one scope / one current app),
// as the rollout page's campaign does (src/README.md, "Email"). Prints the counts; --dry-run only
// counts; --wait also delivers them itself, with progress, and exits 0 once the campaign's outbox
// is empty (1 when some failed).
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { systemClock } from '../clock.js'
import { isDomainError } from '../errors.js'
import { Id, Scope } from '../http/schemas.js'
import { type Selection, createCampaign, expandCampaigns, previewSelection } from '../mail/campaigns.js'
import { processOutbox } from '../mail/outbox.js'
import { createMailer } from '../mail/transport.js'
import { type Runtime, openRuntime } from '../runtime.js'
import { parseOptions } from './args.js'

export const sendLinksUsage =
  'Usage: npm run cli -- send-links <rollout id> [--scope SCOPE] [--app APP_KEY] [--dry-run] [--wait]'

const Input = Type.Object({
  id: Id,
  scope: Type.Optional(Scope),
  app: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' })),
})

const SEND_LINKS_OPTIONS = {
  scope: { type: 'string' },
  app: { type: 'string' },
  'dry-run': { type: 'boolean' },
  wait: { type: 'boolean' },
} as const

export async function sendLinksCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
  out: (line: string) => void = (line) => console.log(line),
): Promise<number> {
  const parsed = parseOptions(args, SEND_LINKS_OPTIONS, sendLinksUsage)
  if (!parsed) return 2
  const [id, ...extra] = parsed.positionals
  const input = Value.Convert(Input, { id, scope: parsed.values.scope, app: parsed.values.app })
  if (!id || extra.length || !Value.Check(Input, input)) {
    const problem = [...Value.Errors(Input, input)][0]
    console.error(
      `${problem ? `${problem.instancePath.slice(1) || 'input'} ${problem.message}\n` : ''}${sendLinksUsage}`,
    )
    return 2
  }
  const { config, db } = await open()
  try {
    let appId: number | undefined
    if (input.app !== undefined) {
      const app = await db.selectFrom('oauth_apps').select('id').where('key', '=', input.app).executeTakeFirst()
      if (!app) {
        console.error(`There is no app "${input.app}".`)
        return 1
      }
      appId = app.id
    }
    const filtered = input.scope !== undefined || appId !== undefined
    const selection: Selection = {
      kind: filtered ? 'filter' : 'everyone',
      filter: {
        sort: 'user',
        ...(input.scope !== undefined ? { scope: input.scope } : {}),
        ...(appId !== undefined ? { appId } : {}),
      },
      userIds: [],
    }
    const { counts } = await previewSelection(db, input.id, selection)
    const skipped = `skipped: ${counts.noEmail} no email, ${counts.optedOut} opted out, ${counts.covered} covered, ${counts.already} already emailed`
    if (parsed.values['dry-run']) {
      out(`Would email ${counts.willSend} of ${counts.selected} people (${skipped}).`)
      return 0
    }
    const campaignId = await createCampaign(
      db,
      config,
      { rolloutId: input.id, selection, reminderDays: config.mail.reminderDays, createdBy: 'cli' },
      systemClock.now(),
    )
    // Queue every chunk now (a running server's mail job would too; the campaign lease keeps them apart).
    for (;;) {
      await expandCampaigns(db, () => systemClock.now())
      const c = await db.selectFrom('mail_campaigns').selectAll().where('id', '=', campaignId).executeTakeFirstOrThrow()
      if (c.expand_status === 'done') {
        out(
          `Campaign ${campaignId}: ${c.queued} emails queued (skipped: ${c.skipped_no_email} no email, ${c.skipped_opted_out} opted out, ${c.skipped_covered} covered, ${c.skipped_already} already emailed).`,
        )
        break
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    if (!parsed.values.wait) return 0
    const mailer = createMailer(config.mail)
    if (!mailer) {
      console.error('Email is off: SMTP_URL is not set.')
      return 1
    }
    try {
      for (;;) {
        const run = await processOutbox(
          { config, db, clock: systemClock, mailer },
          { budgetMs: 5_000, only: { campaignIds: [campaignId] } },
        )
        const rows = await db
          .selectFrom('mail_outbox')
          .select((eb) => ['status', eb.fn.countAll().as('n')])
          .where('campaign_id', '=', campaignId)
          .where('step', '=', 0)
          .groupBy('status')
          .execute()
        const n = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0)
        out(`sent ${n('sent')}, failed ${n('failed')}, skipped ${n('skipped')}, waiting ${n('queued') + n('sending')}`)
        if (n('queued') + n('sending') === 0) return n('failed') > 0 ? 1 : 0
        // Waiting rows are in backoff (the server refused for now): try again shortly.
        if (run.sent + run.failed + run.skipped === 0) await new Promise((r) => setTimeout(r, 2_000))
      }
    } finally {
      mailer.close()
    }
  } catch (err) {
    if (isDomainError(err)) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
