// `npm run cli -- webhook add <url> [--events grant.created,grant.revoked,…]`: registers an
// endpoint and prints its signing secret (whsec_…) alone on stdout, once; messages on stderr.
// `webhook list` shows the endpoints.
import { systemClock } from '../clock.js'
import { isDomainError } from '../errors.js'
import { TokenCipher } from '../grants/token-cipher.js'
import { type Runtime, openRuntime } from '../runtime.js'
import { parseOptions } from './args.js'
import { addEndpoint, listEndpoints, parseEventTypes } from '../webhooks/endpoints.js'
import { WEBHOOK_EVENT_TYPES } from '../webhooks/outbox.js'

export const webhookUsage = `Usage: npm run cli -- webhook add <url> [--events ${WEBHOOK_EVENT_TYPES.join(',')}] | webhook list`

export async function webhookCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
): Promise<number> {
  const parsed = parseOptions(args, { events: { type: 'string' } }, webhookUsage)
  if (!parsed) return 2
  const [action, ...rest] = parsed.positionals
  if (!((action === 'add' && rest.length === 1) || (action === 'list' && rest.length === 0))) {
    console.error(webhookUsage)
    return 2
  }
  const { config, db } = await open()
  try {
    if (action === 'list') {
      for (const e of await listEndpoints(db))
        console.log(
          `${e.id}\t${e.url}\t${e.events || 'every event'}\t${e.status}\t${e.delivered} delivered, ${e.pending} pending, ${e.failed} failed`,
        )
      return 0
    }
    const events = parseEventTypes(parsed.values.events)
    const { id, secret } = await addEndpoint(
      db,
      new TokenCipher(config.tokenKeys),
      { url: rest[0]!, events, actor: 'cli' },
      systemClock.now(),
    )
    console.error(
      `Added webhook endpoint ${id} for ${events.length ? events.join(', ') : 'every event'}. Its signing secret, shown once:`,
    )
    console.log(secret)
    return 0
  } catch (err) {
    if (isDomainError(err, 'webhook.invalid')) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
