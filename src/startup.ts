// One-time tasks at server start, after migrations (e.g. the first operator account).
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'
import type { Logger } from './log.js'
import { ensureFirstOperator } from './admin/operators.js'

export interface StartupContext {
  config: Config
  db: Db
  clock: Clock
  log: Logger
}

export async function startupTasks(ctx: StartupContext): Promise<void> {
  // First start: an `admin` operator with a random password, printed once to the console (not
  // into the JSON log stream, which is shipped and kept).
  // With password sign-in off, operators come from single sign-on (README, "Operator single sign-on").
  const first = ctx.config.passwordSignIn ? await ensureFirstOperator(ctx.db, ctx.clock.now()) : null
  if (first) {
    const line = '='.repeat(72)
    console.log(
      `\n${line}\n  Scope Ledger: first operator account created (shown only this once)\n    username: ${first.username}\n    password: ${first.password}\n  Sign in at ${ctx.config.publicUrl}/admin/sign-in and keep the password safe.\n${line}\n`,
    )
    ctx.log.info(
      { username: first.username },
      'created the first operator account (password printed to the console once)',
    )
  }
}
