// Prepared queries (src/db/prepared.ts) compile once per database and bind each call's values at
// the places the markers landed: right rows for every call, an argument used twice bound twice,
// constants of the query kept, a second database gets its own SQL, and an argument that does not
// end up as a bound parameter is refused rather than silently ignored. Every available engine.
import { sql } from 'kysely'
import t from 'tap'
import type { Db } from '../../src/db/index.js'
import { preparedQuery } from '../../src/db/prepared.js'
import { engines, openTestDb } from './engines.js'

const AT = 1_795_448_702_166

async function addUsers(db: Db, ids: string[]): Promise<void> {
  await db
    .insertInto('end_users')
    .values(
      ids.map((carta, i) => ({
        carta_user_id: carta,
        local_key: null,
        email: `${carta}@example.com`,
        name: null,
        active_grant_id: null,
        status: i % 2 ? ('needs_reconnect' as const) : ('connected' as const),
        created_at: AT,
        updated_at: AT,
      })),
    )
    .execute()
}

for (const engine of engines()) {
  t.test(`${engine}: compiled once, bound every call`, async (t) => {
    const { db, another } = await openTestDb(t, engine, { migrate: true })
    await addUsers(db, ['cu_a', 'cu_b', 'cu_c'])
    const byCarta = preparedQuery((d: Db, carta: string) =>
      d
        .selectFrom('end_users')
        .select(['carta_user_id', 'email'])
        .where('status', '=', 'connected') // a constant: stays as compiled
        .where((eb) => eb.or([eb('carta_user_id', '=', carta), eb('email', '=', carta)])),
    )
    t.same(await byCarta(db, 'cu_a'), [{ carta_user_id: 'cu_a', email: 'cu_a@example.com' }])
    t.same(await byCarta(db, 'cu_c@example.com'), [{ carta_user_id: 'cu_c', email: 'cu_c@example.com' }])
    t.same(await byCarta(db, 'cu_b'), [], 'the constant condition still applies (cu_b needs reconnect)')
    t.same(await byCarta(db, 'nobody'), [])

    const other = await another()
    t.same(await byCarta(other, 'cu_a'), [{ carta_user_id: 'cu_a', email: 'cu_a@example.com' }], 'another handle')

    const literal = preparedQuery((d: Db, carta: string) =>
      d
        .selectFrom('end_users')
        .select('id')
        .where('carta_user_id', '=', sql.lit(String(carta))),
    )
    await t.rejects(literal(db, 'cu_a'), /not a bound parameter/)
  })
}
