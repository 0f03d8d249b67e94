// The background revocation worker: runs when the app is ready (backgroundJobs on), can be kicked
// after a grant change, and stops with the app.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTestApp } from '../helpers/app.js'
import { connectUser } from '../helpers/connect.js'

t.test('with background jobs on, queued revocations are sent without a manual run', async (t) => {
  const app = await startTestApp(t, { backgroundJobs: true })
  const first = await connectUser(app)
  await connectUser(app, { agent: first.agent })
  app.app.jobs.kick('revocations')
  let rows: Array<{ status: string }> = []
  for (let i = 0; i < 100; i++) {
    rows = await app.db.selectFrom('token_revocations').select('status').execute()
    if (rows.length > 0 && rows.every((r) => r.status === 'done')) break
    await sleep(50)
  }
  t.ok(rows.length > 0 && rows.every((r) => r.status === 'done'), 'the worker revoked the superseded tokens')
  t.ok(
    app.logs.some((l) => l.job === 'revocations' && l.msg === 'revocation run'),
    'the run is logged',
  )
  await app.close()
  t.pass('closing the app stops the interval (the test process exits)')
})

t.test('with background jobs off, kicking does nothing', async (t) => {
  const app = await startTestApp(t)
  const first = await connectUser(app)
  await connectUser(app, { agent: first.agent })
  app.app.jobs.kick('revocations')
  await sleep(200)
  const rows = await app.db.selectFrom('token_revocations').select('status').execute()
  t.ok(rows.length > 0 && rows.every((r) => r.status === 'pending'))
})
