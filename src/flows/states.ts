// OAuth `state` (RFC 6749 §10.12, RFC 9700 §4.7): random, stored server-side, bound to the browser
// session, expiring after 10 minutes and consumed exactly once. It also carries the PKCE verifier
// (RFC 7636) so the verifier never leaves the server.
import { randomBytes } from 'node:crypto'
import type { Kysely, Selectable } from 'kysely'
import type { Clock } from '../clock.js'
import { pruneInBatches } from '../db/prune.js'
import type { Database, OAuthStateTable } from '../db/schema.js'
import type { Job } from '../jobs/runner.js'
import { DAY_MS } from '../time.js'

export const STATE_TTL_MS = 10 * 60 * 1000
export const PRUNE_EVERY_MS = 10 * 60 * 1000
/** Used/expired rows are kept a day for diagnosis ("replayed" vs "unknown"), then deleted. */
const KEEP_MS = DAY_MS

export type StateRow = Selectable<OAuthStateTable>

export interface NewState {
  sessionId: string
  appId: number
  codeVerifier: string
  requestedScopes: string
  redirectUri: string
  linkId?: number | null
  expectedUserId?: number | null
  returnTo?: string | null
  connectSessionId?: number | null
}

export async function createState(db: Kysely<Database>, input: NewState, now: number): Promise<string> {
  const state = randomBytes(32).toString('base64url')
  await db
    .insertInto('oauth_states')
    .values({
      state,
      session_id: input.sessionId,
      app_id: input.appId,
      code_verifier: input.codeVerifier,
      requested_scopes: input.requestedScopes,
      redirect_uri: input.redirectUri,
      link_id: input.linkId ?? null,
      expected_user_id: input.expectedUserId ?? null,
      return_to: input.returnTo ?? null,
      connect_session_id: input.connectSessionId ?? null,
      created_at: now,
      expires_at: now + STATE_TTL_MS,
      used_at: null,
    })
    .execute()
  return state
}

export type ConsumeResult =
  | { ok: true; row: StateRow }
  | { ok: false; reason: 'unknown' | 'replayed' | 'expired' | 'other_session' }

/**
 * Marks the state used, atomically: only one request can win the UPDATE, and only from the
 * session that started the flow, before it expires. A losing request learns why (for the log).
 */
export async function consumeState(
  db: Kysely<Database>,
  state: string,
  sessionId: string,
  now: number,
): Promise<ConsumeResult> {
  const result = await db
    .updateTable('oauth_states')
    .set({ used_at: now })
    .where('state', '=', state)
    .where('session_id', '=', sessionId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  const row = await db.selectFrom('oauth_states').selectAll().where('state', '=', state).executeTakeFirst()
  if (Number(result.numUpdatedRows) === 1 && row) return { ok: true, row }
  if (!row) return { ok: false, reason: 'unknown' }
  // A used state is a replay whichever browser sends it (the winner's session id has since been
  // regenerated); an unused one from another session is a callback carried to another browser.
  if (row.used_at !== null) return { ok: false, reason: 'replayed' }
  if (row.session_id !== sessionId) return { ok: false, reason: 'other_session' }
  return { ok: false, reason: 'expired' }
}

/** Deletes states past their diagnosis period, in bounded batches (db/prune.ts). */
export async function pruneStates(
  db: Kysely<Database>,
  now: number,
  options: { batch?: number; maxBatches?: number } = {},
): Promise<number> {
  return pruneInBatches(db, 'oauth_states', now - KEEP_MS, options)
}

/** Deletes states past their diagnosis period, every PRUNE_EVERY_MS while the job runner is started. */
export function stateCleanupJob(deps: { db: Kysely<Database>; clock: Clock }): Job<number> {
  return {
    everyMs: PRUNE_EVERY_MS,
    run: async (log) => {
      const deleted = await pruneStates(deps.db, deps.clock.now())
      if (deleted > 0) log.info({ deleted }, 'old OAuth states deleted')
      return deleted
    },
  }
}
