import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { currentApp, findAppByKey, syncApps } from '../../src/apps/apps.js'
import { loadConfig } from '../../src/config.js'
import { startTestApp } from '../helpers/app.js'
import { openTestDb, postgresUrl } from '../db/engines.js'

t.test('declared apps are mirrored; an operator retirement and its successor survive a restart', async (t) => {
  const { db, config, clock } = await startTestApp(t)
  t.equal((await currentApp(db, 'production'))?.key, 'production-v2')
  t.equal(
    (await findAppByKey(db, 'production-v1'))?.scopes,
    'read_issuer_info read_user_info',
    'scopes stored as a canonical set',
  )

  // What /admin/apps does when an operator retires the current app and picks v1 to take over.
  const now = clock.now()
  await db
    .updateTable('oauth_apps')
    .set({ status: 'retired', is_current: 0, retired_at: now })
    .where('key', '=', 'production-v2')
    .execute()
  await db.updateTable('oauth_apps').set({ is_current: 1 }).where('key', '=', 'production-v1').execute()

  await syncApps(db, config.apps, now + 1000) // a restart with the same apps file
  const v2 = await findAppByKey(db, 'production-v2')
  t.equal(v2?.status, 'retired', 'retiring is one-way even though the file says active')
  t.equal(v2?.retired_at, now, 'retirement time kept')
  t.equal((await currentApp(db, 'production'))?.key, 'production-v1', "the operator's successor stays current")
  t.equal((await currentApp(db, 'playground'))?.key, 'playground', 'other environments follow the file')

  // The file later names v1 as current explicitly: still v1, and a file change applies.
  const edited = config.apps.map((a) =>
    a.environment === 'production' ? { ...a, current: a.key === 'production-v1' } : a,
  )
  await syncApps(db, edited, now + 2000)
  t.equal((await currentApp(db, 'production'))?.key, 'production-v1')
})

t.test(
  'two instances starting at once on an empty PostgreSQL schema both sync the apps',
  { skip: postgresUrl() ? false : 'set TEST_DATABASE_URL or TEST_DATABASE_URL_PG to run on PostgreSQL' },
  async (t) => {
    const { db, another } = await openTestDb(t, 'postgres')
    const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: mkdtempSync(join(tmpdir(), 'sl-apps-')) })
    const other = await another()
    for (let round = 0; round < 5; round++) {
      await db.deleteFrom('oauth_apps').execute()
      const results = await Promise.allSettled([syncApps(db, config.apps, 1), syncApps(other, config.apps, 2)])
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []))
      t.same(failures, [], `round ${round}: neither start-up fails`)
      t.equal((await db.selectFrom('oauth_apps').select('id').execute()).length, 3)
    }
  },
)
