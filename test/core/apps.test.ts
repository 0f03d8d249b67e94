import t from 'tap'
import { currentApp, findAppByKey, syncApps } from '../../src/carta/apps.js'
import { startTestApp } from '../helpers/app.js'

t.test('declared apps are mirrored; an operator retirement and its successor survive a restart', async (t) => {
  const { db, config, clock } = await startTestApp(t)
  t.equal((await currentApp(db, 'production'))?.key, 'production-v2')
  t.equal((await findAppByKey(db, 'production-v1'))?.scopes, 'read_issuer_info read_user_info', 'scopes stored as a canonical set')

  // What /admin/apps does when an operator retires the current app and picks v1 to take over.
  const now = clock.now()
  await db.updateTable('oauth_apps').set({ status: 'retired', is_current: 0, retired_at: now }).where('key', '=', 'production-v2').execute()
  await db.updateTable('oauth_apps').set({ is_current: 1 }).where('key', '=', 'production-v1').execute()

  await syncApps(db, config.apps, now + 1000) // a restart with the same apps file
  const v2 = await findAppByKey(db, 'production-v2')
  t.equal(v2?.status, 'retired', 'retiring is one-way even though the file says active')
  t.equal(v2?.retired_at, now, 'retirement time kept')
  t.equal((await currentApp(db, 'production'))?.key, 'production-v1', "the operator's successor stays current")
  t.equal((await currentApp(db, 'playground'))?.key, 'playground', 'other environments follow the file')

  // The file later names v1 as current explicitly: still v1, and a file change applies.
  const edited = config.apps.map((a) => (a.environment === 'production' ? { ...a, current: a.key === 'production-v1' } : a))
  await syncApps(db, edited, now + 2000)
  t.equal((await currentApp(db, 'production'))?.key, 'production-v1')
})
