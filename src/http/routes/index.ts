// Every route module of the application, one line each (src/README.md, "Where each kind of change
// goes"). /admin is one encapsulated plugin with its own guard (admin/index.ts).
import type { FastifyInstance } from 'fastify'
import { blankFieldsAbsent } from '../input.js'
import admin from './admin/index.js'
import api from './api/index.js'
import assets from './assets.js'
import connect from './connect.js'
import features from './features.js'
import health from './health.js'
import home from './home.js'
import mail from './mail.js'
import prompt from './prompt.js'
import reauthorize from './reauthorize.js'
import sandbox from './sandbox.js'

/** The application's own pages: blank form and query fields count as absent (../input.ts). */
async function pages(app: FastifyInstance): Promise<void> {
  app.addHook('preValidation', blankFieldsAbsent)
  await app.register(assets)
  await app.register(health)
  await app.register(home)
  await app.register(connect)
  await app.register(features)
  await app.register(reauthorize)
  await app.register(mail)
  await app.register(prompt)
  await app.register(admin, { prefix: '/admin' })
}

export default async function routes(app: FastifyInstance): Promise<void> {
  await app.register(pages)
  // The integrator's API: its own key guard and problem+json errors (api/v1.ts); JSON bodies as sent.
  await app.register(api, { prefix: '/api' })
  // The stand-in for Carta reads its input the way Carta would (RFC 6749 forms), untouched.
  if (app.deps.config.sandboxEnabled) await app.register(sandbox, { prefix: '/sandbox' })
}
