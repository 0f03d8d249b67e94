// Everything under /admin, as one encapsulated plugin whose onRequest hook is the operator guard
// (access.ts): the ONE place access to operator pages is decided.
import type { FastifyInstance } from 'fastify'
import { guard } from './access.js'
import apiKeys from './api-keys.js'
import apps from './apps.js'
import audit from './audit.js'
import imports from './imports.js'
import links from './links.js'
import mail from './mail.js'
import operators from './operators.js'
import reports from './reports.js'
import rollouts from './rollouts.js'
import signIn from './sign-in.js'
import sso from './sso.js'
import users from './users.js'
import webhooks from './webhooks.js'

export default async function admin(app: FastifyInstance): Promise<void> {
  app.decorateRequest('operator', null)
  app.addHook('onRequest', guard)
  await app.register(signIn)
  await app.register(sso)
  await app.register(rollouts)
  await app.register(links)
  await app.register(mail)
  await app.register(users)
  await app.register(apps)
  await app.register(audit)
  await app.register(reports)
  await app.register(imports)
  await app.register(apiKeys)
  await app.register(webhooks)
  await app.register(operators)
}
