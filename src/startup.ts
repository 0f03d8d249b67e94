// One-time tasks at server start, after migrations (e.g. the first operator account).
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'

export interface StartupContext {
  config: Config
  db: Db
  clock: Clock
  log: FastifyBaseLogger
}

export async function startupTasks(_ctx: StartupContext): Promise<void> {}
