// insertRows (src/db/batch.ts): many rows in as few statements as the parameter limit allows, the
// rows a `returning` suffix names in insert order, a conflict clause applied, NULLs and texts bound
// as values (never spliced into the SQL). Every available engine.
import t from 'tap'
import { insertRows, MAX_PARAMETERS } from '../../src/db/batch.js'
import { engines, openTestDb } from './engines.js'

const AT = 1_795_448_702_166

for (const engine of engines()) {
  t.test(`${engine}: insertRows across the parameter limit, with returning and on conflict`, async (t) => {
    const { db } = await openTestDb(t, engine)
    // 8 columns a row: more rows than one statement may bind.
    const n = Math.ceil(MAX_PARAMETERS / 8) + 17
    const users = Array.from({ length: n }, (_, i) => ({
      carta_user_id: `c-${i}`,
      local_key: null,
      email: i === 0 ? "o'brien\u2019s; drop table end_users; --" : `u${i}@example.com`,
      name: i % 2 ? null : `User ${i}`,
      active_grant_id: null,
      status: 'connected' as const,
      created_at: AT,
      updated_at: AT + i,
    }))
    const inserted = await insertRows<'end_users', { id: number; carta_user_id: string }>(
      db,
      'end_users',
      users,
      'returning id, carta_user_id',
    )
    t.equal(inserted.length, n, 'one returned row per row, across statements')
    t.same(
      inserted.slice(0, 3).map((r) => r.carta_user_id),
      ['c-0', 'c-1', 'c-2'],
    )
    t.equal(inserted.at(-1)!.carta_user_id, `c-${n - 1}`)
    const stored = await db
      .selectFrom('end_users')
      .select(['carta_user_id', 'email', 'name', 'updated_at'])
      .orderBy('id')
      .execute()
    t.equal(stored.length, n)
    t.same(
      stored[0],
      { carta_user_id: 'c-0', email: users[0]!.email, name: 'User 0', updated_at: AT },
      'a text with quotes is a value',
    )
    t.same(
      stored[1],
      { carta_user_id: 'c-1', email: 'u1@example.com', name: null, updated_at: AT + 1 },
      'NULL stays NULL',
    )
    t.equal(stored.at(-1)!.updated_at, AT + n - 1)

    t.same(await insertRows(db, 'end_users', []), [], 'no rows, no statement')
    await insertRows(db, 'end_users', users.slice(0, 2), 'on conflict do nothing')
    t.equal((await db.selectFrom('end_users').select('id').execute()).length, n, 'the conflict clause applies')
    await t.rejects(insertRows(db, 'end_users', users.slice(0, 1)), 'without one, a duplicate fails')
  })
}
