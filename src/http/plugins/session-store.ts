// @fastify/session store in the database, so sessions survive restarts and are shared by every
// app instance on one database (the in-memory default is neither).
//
// @fastify/session continues the request (its onSend hook, then the response) inside these
// callbacks. Called from a promise reaction, anything that throws there (say, Node refusing a
// header while writing the response) would become an unhandled rejection, and Node ends the
// process on one. So each callback runs once the database work settled, outside the promise
// chain's reach: whatever it throws is logged here and cannot end the process.
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import type { Kysely } from 'kysely'
import type { Clock } from '../../clock.js'
import { pruneInBatches } from '../../db/prune.js'
import type { Database } from '../../db/schema.js'
import type { Logger } from '../../log.js'
import { DAY_MS } from '../../time.js'

type Callback = Parameters<SessionStore['set']>[2]
type SessionCallback = Parameters<SessionStore['get']>[1]

export class DatabaseSessionStore implements SessionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  set(sid: string, session: Session, callback: Callback): void {
    const write = async () => {
      const expires = session.cookie?.expires ? new Date(session.cookie.expires).getTime() : this.clock.now() + DAY_MS
      const data = JSON.stringify(session)
      await this.db
        .insertInto('sessions')
        .values({ sid, data, expires_at: expires })
        .onConflict((oc) => oc.column('sid').doUpdateSet({ data, expires_at: expires }))
        .execute()
    }
    this.settle(write(), () => callback(), callback)
  }

  get(sid: string, callback: SessionCallback): void {
    const read = async (): Promise<Session | null> => {
      const row = await this.db
        .selectFrom('sessions')
        .select(['data', 'expires_at'])
        .where('sid', '=', sid)
        .executeTakeFirst()
      if (!row || row.expires_at <= this.clock.now()) return null
      return JSON.parse(row.data) as Session
    }
    this.settle(read(), (session) => callback(null, session), callback)
  }

  destroy(sid: string, callback: Callback): void {
    const remove = async () => {
      await this.db.deleteFrom('sessions').where('sid', '=', sid).execute()
    }
    this.settle(remove(), () => callback(), callback)
  }

  /** Deletes expired sessions (in bounded batches); the job `sessions` (db/prune.ts) runs it on a schedule. */
  async prune(): Promise<number> {
    return pruneInBatches(this.db, 'sessions', this.clock.now() + 1)
  }

  /** Hands the outcome to @fastify/session; a throw from its continuation is logged, never rejected. */
  private settle<T>(work: Promise<T>, ok: (value: T) => void, fail: (err: unknown) => void): void {
    const guarded = (run: () => void) => {
      try {
        run()
      } catch (err) {
        this.log.error({ err }, 'a request failed after the session store answered')
      }
    }
    work.then(
      (value) => guarded(() => ok(value)),
      (err: unknown) => guarded(() => fail(err)),
    )
  }
}
