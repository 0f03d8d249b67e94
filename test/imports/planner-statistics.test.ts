// A large import refreshes PostgreSQL's planner statistics of the tables it grows (each time the
// recorded rows double past 5,000), so the pages do not plan from the empty tables' estimates
// while autovacuum is slow or off. reltuples is -1 in pg_class until a table is first analyzed.
import { sql } from 'kysely'
import t from 'tap'
import { isPostgres } from '../../src/db/dialect.js'
import { importGrants } from '../../src/imports/import.js'
import { silentLogger } from '../../src/log.js'
import { startTestApp } from '../helpers/app.js'

const V2 = 'scope-ledger-production-v2'

t.test('an import of more than 5,000 rows analyzes the tables it grows', async (t) => {
  const app = await startTestApp(t)
  const deps = { ...app.app.deps, log: silentLogger }
  const estimate = async (table: string) =>
    Number(
      (await sql<{ n: number }>`select reltuples as n from pg_class where oid = to_regclass(${table})`.execute(app.db))
        .rows[0]?.n,
    )
  const lines = (from: number, n: number) =>
    Array.from(
      { length: n },
      (_, i) => `${JSON.stringify({ carta_user_id: `u-${from + i}`, client_id: V2, scopes: 'read_user_info' })}\n`,
    ).join('')

  const small = await importGrants(deps, [Buffer.from(lines(0, 100))], {
    format: 'jsonl',
    fileName: 'small.jsonl',
    actor: 'cli',
  })
  t.match(small, { created: 100, rejected: 0 })
  if (isPostgres(app.db)) t.equal(await estimate('end_users'), -1, 'a small import analyzes nothing')

  const large = await importGrants(deps, [Buffer.from(lines(100, 6_000))], {
    format: 'jsonl',
    fileName: 'large.jsonl',
    actor: 'cli',
  })
  t.match(large, { created: 6_000, rejected: 0 })
  if (!isPostgres(app.db)) return
  for (const table of ['end_users', 'grants', 'grant_scopes'])
    t.ok((await estimate(table)) >= 5_000, `${table}: the planner knows its size`)
})
