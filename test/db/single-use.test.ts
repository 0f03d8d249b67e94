// Single-use rows (OAuth state, reauthorization links, refresh locks, report slots) are claimed
// with UPDATE … WHERE used_at IS NULL and the affected-row count decides the winner. Across app
// instances on PostgreSQL this relies on READ COMMITTED re-checking the WHERE clause after the
// row lock is released: of N racing transactions on separate connections, exactly one wins.
import type { Kysely } from 'kysely'
import t from 'tap'
import type { Database } from '../../src/db/schema.js'
import { engines, openTestDb, postgresUrl } from './engines.js'

const AT = 1_795_448_702_166
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function seedApp(db: Kysely<Database>): Promise<number> {
  const app = await db
    .insertInto('oauth_apps')
    .values({
      key: 'race',
      name: 'race',
      environment: 'playground',
      client_id: 'race',
      auth_base_url: 'http://127.0.0.1',
      api_base_url: 'http://127.0.0.1',
      scopes: 'read_user_info',
      status: 'active',
      is_current: 1,
      retired_at: null,
      created_at: AT,
      updated_at: AT,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return app.id
}

async function insertState(db: Kysely<Database>, appId: number, state: string): Promise<void> {
  await db
    .insertInto('oauth_states')
    .values({
      state,
      session_id: 's',
      app_id: appId,
      code_verifier: 'v',
      requested_scopes: 'read_user_info',
      redirect_uri: 'http://127.0.0.1/cb',
      link_id: null,
      expected_user_id: null,
      return_to: null,
      created_at: AT,
      expires_at: AT + 600_000,
      used_at: null,
    })
    .execute()
}

/** The claim every single-use consumer performs; returns true for the one caller that won. */
async function claim(db: Kysely<Database>, state: string, at: number, holdMs: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('oauth_states')
      .set({ used_at: at })
      .where('state', '=', state)
      .where('used_at', 'is', null)
      .executeTakeFirst()
    // Keep the row lock a while so the others really queue behind it (work after the claim).
    if (holdMs) await sleep(holdMs)
    return Number(result.numUpdatedRows) === 1
  })
}

if (postgresUrl()) {
  t.test('postgres: racing claims on separate connections have exactly one winner', async (t) => {
    const { db, another } = await openTestDb(t, 'postgres', { poolSize: 4 })
    const instanceB = await another(4) // a second pool stands for a second app instance
    const appId = await seedApp(db)
    for (let round = 0; round < 10; round++) {
      const state = `state-${round}`
      await insertState(db, appId, state)
      const contenders = Array.from({ length: 8 }, (_, i) => claim(i % 2 ? instanceB : db, state, AT + i, 15))
      const winners = (await Promise.all(contenders)).filter(Boolean).length
      t.equal(winners, 1, `round ${round}: one winner of 8`)
      const row = await db
        .selectFrom('oauth_states')
        .select('used_at')
        .where('state', '=', state)
        .executeTakeFirstOrThrow()
      t.ok(row.used_at !== null && row.used_at >= AT, 'the winner stamped the row')
    }
  })

  t.test('postgres: a winner that rolls back frees the row for the next claimant', async (t) => {
    const { db, another } = await openTestDb(t, 'postgres')
    const instanceB = await another()
    const appId = await seedApp(db)
    await insertState(db, appId, 'rollback')
    const failing = db.transaction().execute(async (trx) => {
      await trx
        .updateTable('oauth_states')
        .set({ used_at: AT })
        .where('state', '=', 'rollback')
        .where('used_at', 'is', null)
        .execute()
      await sleep(50)
      throw new Error('token exchange failed after the claim')
    })
    await sleep(10)
    const waiting = claim(instanceB, 'rollback', AT + 1, 0)
    await t.rejects(failing, /token exchange failed/)
    t.equal(await waiting, true, 'the waiting claimant wins once the first rolls back')
  })
} else {
  t.test(
    'postgres race',
    { skip: 'set TEST_DATABASE_URL or TEST_DATABASE_URL_PG to race connections on PostgreSQL' },
    () => {},
  )
}

for (const engine of engines()) {
  t.test(`${engine}: a claimed row cannot be claimed again`, async (t) => {
    const { db, another } = await openTestDb(t, engine)
    const other = await another()
    const appId = await seedApp(db)
    await insertState(db, appId, 'once')
    // On SQLite one process holds one connection (two writers in one process would wait on each
    // other's lock synchronously); concurrent claims queue on it. PostgreSQL races two pools.
    const second = engine === 'postgres' ? other : db
    const results = await Promise.all([
      claim(db, 'once', AT, 0),
      claim(second, 'once', AT + 1, 0),
      claim(db, 'once', AT + 2, 0),
    ])
    t.same(results.filter(Boolean).length, 1, 'one of three claims wins')
    t.equal(await claim(other, 'once', AT + 3, 0), false, 'a replay later loses')
  })
}
