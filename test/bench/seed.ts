// Seeds the benchmark ledger: N end users and 3 grants each (2 superseded + the latest, which is
// active for most and broken for some), on the three declared apps, with a realistic mix of
// partial grants. Batched multi-row inserts in transactions; reused when the marker row says the
// same size was seeded before.
import { type Insertable, type Kysely, sql } from 'kysely'
import type { Database, Db } from '../../src/db/index.js'
import { isPostgres } from '../../src/db/dialect.js'
import { type PgColumns, insertUnnest } from './pg-bulk.js'

export interface SeedPlan {
  users: number
  now: number
}

const V1 = ['read_issuer_info', 'read_user_info']
const V2 = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']
const DAY = 24 * 60 * 60 * 1000

/** Deterministic pseudo-random numbers (mulberry32) so every seeding yields the same data. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The seeder's own marker table (not part of the app's schema). */
interface BenchSeedTable {
  users: number
  grants: number
  seconds: number
}
const withMarker = (db: Db) => db.withTables<{ bench_seed: BenchSeedTable }>()

async function ensureMarker(db: Db): Promise<void> {
  await db.schema
    .createTable('bench_seed')
    .ifNotExists()
    .addColumn('users', 'bigint', (c) => c.notNull())
    .addColumn('grants', 'bigint', (c) => c.notNull())
    .addColumn('seconds', 'real', (c) => c.notNull())
    .execute()
}

export async function seededSize(db: Db): Promise<{ users: number; grants: number; seconds: number } | null> {
  await ensureMarker(db)
  const row = await withMarker(db).selectFrom('bench_seed').selectAll().executeTakeFirst()
  return row ? { users: Number(row.users), grants: Number(row.grants), seconds: Number(row.seconds) } : null
}

/**
 * The ledger of `users` seeded at `now`: reused when the database already holds one of that size,
 * else seeded (the benches share this; seeding 1M users takes about a minute). Says which on `log`.
 */
export async function seedOnce(
  db: Db,
  options: { users: number; now: number },
  log: (line: string) => void,
): Promise<{ users: number; grants: number; seconds: number }> {
  const existing = await seededSize(db)
  const count = (n: number) => n.toLocaleString('en-US')
  if (existing?.users === options.users) {
    log(
      `Reusing the seeded ledger (${count(existing.users)} users, ${count(existing.grants)} grants; seeding took ${existing.seconds.toFixed(1)} s)`,
    )
    return existing
  }
  log('Seeding (first run, or a different size)…')
  const size = await seed(db, options, log)
  log(`Seeded ${count(size.users)} users and ${count(size.grants)} grants in ${size.seconds.toFixed(1)} s`)
  return size
}

// Column types for the PostgreSQL bulk path (see pg-bulk.ts); same columns the rows below carry.
const USER_COLUMNS: PgColumns = {
  id: 'integer',
  carta_user_id: 'text',
  local_key: 'text',
  email: 'text',
  name: 'text',
  active_grant_id: 'integer',
  status: 'text',
  created_at: 'bigint',
  updated_at: 'bigint',
}
const GRANT_COLUMNS: PgColumns = {
  id: 'integer',
  user_id: 'integer',
  app_id: 'integer',
  requested_scopes: 'text',
  granted_scopes: 'text',
  scopes_source: 'text',
  status: 'text',
  status_reason: 'text',
  created_at: 'bigint',
  ended_at: 'bigint',
  superseded_by: 'integer',
}

async function insertChunks<T extends 'end_users' | 'grants' | 'grant_scopes'>(
  db: Kysely<Database>,
  table: T,
  rows: Array<Insertable<Database[T]>>,
  columns: number,
): Promise<void> {
  const per = Math.floor(30000 / columns) // stay under SQLite's 32766 bound parameters
  for (let i = 0; i < rows.length; i += per)
    await db
      .insertInto(table)
      .values(rows.slice(i, i + per))
      .execute()
}

export async function seed(
  db: Db,
  plan: SeedPlan,
  log: (line: string) => void,
): Promise<{ users: number; grants: number; seconds: number }> {
  await ensureMarker(db)
  const started = performance.now()
  const postgres = isPostgres(db)
  if (!postgres) await sql`PRAGMA synchronous = OFF`.execute(db) // this connection only; bench data is disposable
  const apps = await db.selectFrom('oauth_apps').select(['id', 'key']).execute()
  const appId = (key: string) => apps.find((a) => a.key === key)!.id
  const [v1, v2, playground] = [appId('production-v1'), appId('production-v2'), appId('playground')]

  // Start from an empty ledger (a half-finished earlier seed, or a different size).
  const tables: Array<keyof Database | 'bench_seed'> = [
    'rollout_counts',
    'rollout_member_missing',
    'rollout_members',
    'reauth_links',
    'rollouts',
    'audit_events',
    'grant_scopes',
    'grants',
    'end_users',
    'bench_seed',
  ]
  if (postgres) {
    // DELETE would fire a cascade trigger per row (millions); TRUNCATE empties all of them at once.
    // CASCADE also empties tables that reference these (grant_tokens, token_revocations, rollout builds).
    await sql`truncate table ${sql.join(tables.map((t) => sql.table(t)))} cascade`.execute(db)
  } else {
    for (const table of tables) await withMarker(db).deleteFrom(table).execute()
  }

  const superuser =
    postgres &&
    Boolean(
      (await sql<{ su: boolean }>`select rolsuper as su from pg_roles where rolname = current_user`.execute(db)).rows[0]
        ?.su,
    )

  const random = rng(42)
  const batch = 20_000
  let grantsTotal = 0
  for (let from = 1; from <= plan.users; from += batch) {
    const to = Math.min(plan.users, from + batch - 1)
    const users: Array<Insertable<Database['end_users']>> = []
    const grants: Array<Insertable<Database['grants']>> = []
    const scopes: Array<{ grant_id: number; scope: string }> = []
    for (let id = from; id <= to; id++) {
      const created = plan.now - Math.floor((2 * 365 + random() * 365) * DAY)
      const firstGrant = 3 * id - 2
      const lastGrant = 3 * id
      const broken = random() < 0.04
      // Where the latest grant sits and what it holds: most still on v1, many on v2, some partial.
      const r = random()
      let app: number
      let held: string[]
      if (r < 0.55) [app, held] = [v1, random() < 0.8 ? V1 : ['read_user_info']]
      else if (r < 0.95) {
        const p = random()
        app = v2
        held = p < 0.7 ? V2 : p < 0.9 ? V1 : ['read_user_info']
      } else if (r < 0.99) [app, held] = [v2, [...V2, 'readwrite_issuer_info']]
      else [app, held] = [playground, ['read_user_info']]
      users.push({
        id,
        carta_user_id: `cu_${String(id).padStart(7, '0')}`,
        local_key: null,
        email: `user${id}@example${id % 97}.com`,
        name: `User ${id}`,
        active_grant_id: broken ? null : lastGrant,
        status: broken ? 'needs_reconnect' : 'connected',
        created_at: created,
        updated_at: created,
      })
      for (let g = firstGrant; g <= lastGrant; g++) {
        const last = g === lastGrant
        const at = created + (g - firstGrant) * Math.floor(random() * 200 * DAY + DAY)
        const grantScopes = last ? held : V1
        grants.push({
          id: g,
          user_id: id,
          app_id: last ? app : v1,
          requested_scopes: (last ? (app === v1 ? V1 : V2) : V1).join(' '),
          granted_scopes: grantScopes.join(' '),
          scopes_source: random() < 0.8 ? 'reported' : 'assumed',
          status: last ? (broken ? 'broken' : 'active') : 'superseded',
          status_reason: last && broken ? 'invalid_grant' : null,
          created_at: at,
          ended_at: last ? (broken ? at + DAY : null) : at + DAY,
          superseded_by: last ? null : g + 1,
        })
        for (const scope of grantScopes) scopes.push({ grant_id: g, scope })
      }
    }
    await db.transaction().execute(async (trx) => {
      if (postgres) {
        // Bench data is disposable: no WAL flush wait at each commit (like SQLite's synchronous = OFF).
        await sql`set local synchronous_commit = off`.execute(trx)
        // Skip the foreign-key triggers for this load only: each would run SELECT … FOR KEY SHARE on
        // the parent row, ~10M of them. The generated rows reference only rows inserted before them.
        // Only a superuser may (as on these machines); otherwise every FK check stays, just slower.
        if (superuser) await sql`set local session_replication_role = replica`.execute(trx)
        await insertUnnest(trx, 'end_users', USER_COLUMNS, users)
        await insertUnnest(trx, 'grants', GRANT_COLUMNS, grants)
        await insertUnnest(trx, 'grant_scopes', { grant_id: 'integer', scope: 'text' }, scopes)
      } else {
        await insertChunks(trx, 'end_users', users, 9)
        await insertChunks(trx, 'grants', grants, 11)
        await insertChunks(trx, 'grant_scopes', scopes, 2)
      }
    })
    grantsTotal += grants.length
    if (to % 100_000 === 0 || to === plan.users) {
      const s = (performance.now() - started) / 1000
      log(
        `  seeded ${to.toLocaleString('en-US')} users, ${grantsTotal.toLocaleString('en-US')} grants (${s.toFixed(0)} s)`,
      )
    }
  }
  if (postgres) {
    for (const table of ['end_users', 'grants'])
      await sql`select setval(pg_get_serial_sequence(${table}, 'id'), (select max(id) from ${sql.table(table)}))`.execute(
        db,
      )
    // Only the seeded tables: a bare ANALYZE walks every schema in the database (other test runs).
    await sql`analyze end_users, grants, grant_scopes`.execute(db)
  } else {
    await sql`PRAGMA synchronous = NORMAL`.execute(db)
    await sql`ANALYZE`.execute(db)
  }
  const seconds = (performance.now() - started) / 1000
  await withMarker(db).insertInto('bench_seed').values({ users: plan.users, grants: grantsTotal, seconds }).execute()
  return { users: plan.users, grants: grantsTotal, seconds }
}
