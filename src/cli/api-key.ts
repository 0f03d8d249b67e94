// `npm run cli -- api-key create <name> [--permissions read,tokens,links,connect]`, `api-key list`,
// `api-key revoke <id>`. create prints the key alone on stdout (once: it is stored hashed), so
// `KEY=$(npm run -s cli -- api-key create billing)` works; every message goes to stderr.
import { Value } from 'typebox/value'
import { createApiKey, listApiKeys, parsePermissions, revokeApiKey } from '../api/keys.js'
import { systemClock } from '../clock.js'
import { isDomainError } from '../errors.js'
import { Id } from '../http/schemas.js'
import { type Runtime, openRuntime } from '../runtime.js'
import { parseOptions } from './args.js'

export const apiKeyUsage =
  'Usage: npm run cli -- api-key create <name> [--permissions read,tokens,links,connect] | api-key list | api-key revoke <id>'

export async function apiKeyCommand(
  args: string[],
  open: () => Promise<Runtime> = () => openRuntime(),
): Promise<number> {
  const parsed = parseOptions(args, { permissions: { type: 'string' } }, apiKeyUsage)
  if (!parsed) return 2
  const [action, ...rest] = parsed.positionals
  const valid =
    (action === 'create' && rest.length === 1) ||
    (action === 'list' && rest.length === 0) ||
    (action === 'revoke' && rest.length === 1 && Value.Check(Id, Number(rest[0])))
  if (!valid) {
    console.error(apiKeyUsage)
    return 2
  }
  const { db } = await open()
  try {
    if (action === 'create') {
      const permissions = parsePermissions(parsed.values.permissions ?? 'read')
      const { key, info } = await createApiKey(db, { name: rest[0]!, permissions, actor: 'cli' }, systemClock.now())
      console.error(`Created API key ${info.id} "${info.name}" (${info.permissions.join(', ')}). It is shown once:`)
      console.log(key)
      return 0
    }
    if (action === 'list') {
      for (const k of await listApiKeys(db)) {
        const used = k.lastUsedAt === null ? 'never used' : `last used ${new Date(k.lastUsedAt).toISOString()}`
        const state = k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`
        console.log(
          `${k.id}\t${k.name}\t${k.prefix}…\t${k.permissions.join(',')}\tcreated ${new Date(k.createdAt).toISOString()}\t${used}\t${state}`,
        )
      }
      return 0
    }
    const revoked = await revokeApiKey(db, Number(rest[0]), 'cli', systemClock.now())
    console.error(revoked ? `Revoked API key ${rest[0]}.` : `API key ${rest[0]} was already revoked.`)
    return 0
  } catch (err) {
    if (isDomainError(err, 'api_key.invalid') || isDomainError(err, 'api_key.not_found')) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
}
