// The engine differences src/db/dialect.ts hides: bigint/count/sum come back as numbers, both
// engines' unique and foreign-key violations are recognised, and generated ids are returned.
import { sql } from 'kysely'
import t from 'tap'
import { isForeignKeyViolation, isPostgres, isUniqueViolation } from '../../src/db/dialect.js'
import { engines, openTestDb } from './engines.js'

// A real epoch-ms time well past 2^31, so an int4 column or a string parse would show.
const AT = 1_795_448_702_166

for (const engine of engines()) {
  t.test(`${engine}: bigint times, counts and sums come back as numbers`, async (t) => {
    const { db } = await openTestDb(t, engine)
    t.equal(isPostgres(db), engine === 'postgres', 'isPostgres tells the engines apart')
    await db
      .insertInto('sessions')
      .values([
        { sid: 'a', data: '{}', expires_at: AT },
        { sid: 'b', data: '{}', expires_at: AT + 1 },
      ])
      .execute()
    const row = await db.selectFrom('sessions').select('expires_at').where('sid', '=', 'a').executeTakeFirstOrThrow()
    t.equal(typeof row.expires_at, 'number')
    t.equal(row.expires_at, AT)
    const agg = await db
      .selectFrom('sessions')
      .select((e) => [e.fn.countAll().as('n'), e.fn.sum('expires_at').as('total'), e.fn.max('expires_at').as('latest')])
      .executeTakeFirstOrThrow()
    t.equal(agg.n, 2, 'count(*) is a number')
    t.equal(agg.total, 2 * AT + 1, 'sum(bigint) is a number')
    t.equal(agg.latest, AT + 1, 'max(bigint) is a number')
  })

  t.test(`${engine}: generated ids come back from insert … returning`, async (t) => {
    const { db } = await openTestDb(t, engine)
    const first = await db
      .insertInto('operators')
      .values({ username: 'ann', password_hash: 'x', created_at: AT })
      .returning('id')
      .executeTakeFirstOrThrow()
    const second = await db
      .insertInto('operators')
      .values({ username: 'bob', password_hash: 'x', created_at: AT })
      .returning('id')
      .executeTakeFirstOrThrow()
    t.equal(typeof first.id, 'number')
    t.equal(second.id, first.id + 1)
  })

  t.test(`${engine}: unique and foreign-key violations are recognised`, async (t) => {
    const { db } = await openTestDb(t, engine)
    await db.insertInto('sessions').values({ sid: 'dup', data: '{}', expires_at: AT }).execute()
    const dup = await db
      .insertInto('sessions')
      .values({ sid: 'dup', data: '{}', expires_at: AT })
      .execute()
      .then(
        () => null,
        (err: unknown) => err,
      )
    t.ok(dup, 'duplicate primary key rejected')
    t.ok(isUniqueViolation(dup), 'primary key clash is a unique violation')
    t.notOk(isForeignKeyViolation(dup))

    await db.insertInto('operators').values({ username: 'ann', password_hash: 'x', created_at: AT }).execute()
    const dupName = await db
      .insertInto('operators')
      .values({ username: 'ann', password_hash: 'y', created_at: AT })
      .execute()
      .then(
        () => null,
        (err: unknown) => err,
      )
    t.ok(isUniqueViolation(dupName), 'unique column clash is a unique violation')

    const orphan = await db
      .insertInto('grants')
      .values({
        user_id: 999,
        app_id: 999,
        requested_scopes: 'a',
        granted_scopes: 'a',
        scopes_source: 'assumed',
        status: 'active',
        status_reason: null,
        created_at: AT,
        ended_at: null,
        superseded_by: null,
      })
      .execute()
      .then(
        () => null,
        (err: unknown) => err,
      )
    t.ok(isForeignKeyViolation(orphan), 'foreign keys are enforced (SQLite needs PRAGMA foreign_keys)')
    t.notOk(isUniqueViolation(orphan))
    t.notOk(isUniqueViolation(new Error('other')))
  })

  t.test(`${engine}: a failed transaction leaves no rows`, async (t) => {
    const { db } = await openTestDb(t, engine)
    await t.rejects(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('sessions').values({ sid: 'half', data: '{}', expires_at: AT }).execute()
        await trx.insertInto('sessions').values({ sid: 'half', data: '{}', expires_at: AT }).execute()
      }),
    )
    const { rows } = await sql<{ n: number }>`select count(*) as n from sessions`.execute(db)
    t.equal(Number(rows[0]?.n), 0)
  })
}
