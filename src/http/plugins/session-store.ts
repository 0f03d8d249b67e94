// @fastify/session store in the database, so sessions survive restarts and are shared by every
// app instance on one database (the in-memory default is neither).
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import type { Kysely } from 'kysely'
import type { Clock } from '../../clock.js'
import type { Database } from '../../db/schema.js'

const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000

type Callback = Parameters<SessionStore['set']>[2]
type SessionCallback = Parameters<SessionStore['get']>[1]

export class DatabaseSessionStore implements SessionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  set(sid: string, session: Session, callback: Callback): void {
    const expires = session.cookie?.expires
      ? new Date(session.cookie.expires).getTime()
      : this.clock.now() + DEFAULT_TTL_MS
    const data = JSON.stringify(session)
    this.db
      .insertInto('sessions')
      .values({ sid, data, expires_at: expires })
      .onConflict((oc) => oc.column('sid').doUpdateSet({ data, expires_at: expires }))
      .execute()
      .then(() => callback(), callback)
  }

  get(sid: string, callback: SessionCallback): void {
    this.db
      .selectFrom('sessions')
      .select(['data', 'expires_at'])
      .where('sid', '=', sid)
      .executeTakeFirst()
      .then((row) => {
        if (!row || row.expires_at <= this.clock.now()) return callback(null, null)
        callback(null, JSON.parse(row.data))
      }, callback)
  }

  destroy(sid: string, callback: Callback): void {
    this.db
      .deleteFrom('sessions')
      .where('sid', '=', sid)
      .execute()
      .then(() => callback(), callback)
  }

  /** Deletes expired sessions; run periodically. */
  async prune(): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('expires_at', '<=', this.clock.now()).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
