// The sandbox Carta mounted inside the app (routes/index.ts registers this under /sandbox when
// config.sandboxEnabled). Its clients are the apps declared with "sandbox" URLs; the only
// registered redirect URI is the app's own callback, matched exactly as Carta does.
import { createHmac } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { sandboxPlugin } from '../../sandbox/plugin.js'
import { type SandboxClient, SandboxStore } from '../../sandbox/store.js'

/** Registered clients for the mounted sandbox: every app in config.apps with `sandbox: true`. */
export function sandboxClientsFromConfig(config: Config): SandboxClient[] {
  const clients = new Map<string, SandboxClient>()
  for (const app of config.apps) {
    if (!app.sandbox || clients.has(app.clientId)) continue
    clients.set(app.clientId, {
      clientId: app.clientId,
      clientSecret: app.clientSecret,
      name: app.name,
      scopes: app.scopes,
      redirectUris: [`${config.publicUrl}/carta/callback`],
    })
  }
  return [...clients.values()]
}

export default async function sandbox(app: FastifyInstance): Promise<void> {
  const { config, clock } = app.deps
  const store = new SandboxStore(sandboxClientsFromConfig(config), clock, { rateLimit: config.sandboxRateLimit })
  // Derived from the session secret so a restart keeps demo users signed in; never the same value.
  const cookieSecret = createHmac('sha256', config.sessionSecret).update('sandbox-user-cookie').digest('base64url')
  await app.register(sandboxPlugin, { store, cookieSecret, cookieSecure: config.cookieSecure })
}
