// Crash resume (README, "Rollouts"): a build whose lease is held by this host's dead previous run
// (kill -9, a crash) is taken over on the next start at once, not after the 60-second lease; a
// lease held by another host is left to run out.
import { spawnSync } from 'node:child_process'
import { hostname } from 'node:os'
import t from 'tap'
import { isDeadLocalOwner } from '../../src/rollouts/build.js'
import { startRollout } from '../../src/rollouts/rollouts.js'
import { buildRollouts, startTestApp } from '../helpers/app.js'
import { addUser, appId } from '../helpers/ledger.js'

t.test('on start, builds leased by a dead local process resume at once', async (t) => {
  const app = await startTestApp(t)
  const now = app.clock.now()
  for (let i = 0; i < 5; i++) await addUser(app.db, now, { carta: `c-${i}` })
  const v2 = await appId(app.db, 'production-v2')
  const dead = spawnSync(process.execPath, ['-e', '0']).pid
  const orphan = await startRollout(app.db, { name: 'Orphan', appId: v2, scopes: ['read_user_info'] }, 'test', now)
  const elsewhere = await startRollout(app.db, { name: 'Remote', appId: v2, scopes: ['read_user_info'] }, 'test', now)
  const lease = (id: number, owner: string) =>
    app.db
      .updateTable('rollouts')
      .set({ build_lock_owner: owner, build_lock_until: now + 60_000 })
      .where('id', '=', id)
      .execute()
  await lease(orphan, `${hostname()}:${dead}:0badc0de`)
  await lease(elsewhere, 'another-host.example:4242:12345678')

  await buildRollouts(app.app)
  const status = async (id: number) =>
    (await app.db.selectFrom('rollouts').select('build_status').where('id', '=', id).executeTakeFirstOrThrow())
      .build_status
  t.equal(await status(orphan), 'ready', 'the dead local run’s build was taken over and finished')
  t.equal(await status(elsewhere), 'building', 'another host’s live lease is respected')
  t.ok(
    app.logs.some((l) => l.msg === 'took over builds left by a dead previous run'),
    'the takeover is logged',
  )
})

t.test('isDeadLocalOwner', async (t) => {
  const me = `${hostname()}:${process.pid}:aaaaaaaa`
  t.notOk(isDeadLocalOwner(me, me), 'our own lease')
  t.ok(isDeadLocalOwner(`${hostname()}:${process.pid}:bbbbbbbb`, me), 'our pid, another nonce: a restart')
  t.notOk(isDeadLocalOwner(`${hostname()}:${process.ppid}:bbbbbbbb`, me), 'a live local process')
  t.notOk(isDeadLocalOwner('elsewhere:1:bbbbbbbb', me), 'another host')
  t.notOk(isDeadLocalOwner('garbage', me), 'not an owner id')
})
