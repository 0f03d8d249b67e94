// 200 connect flows, 20 in flight, through the sandbox, with two active rollouts so every callback
// moves rollout counters. The same six Carta users connect again and again (first connections
// from several browsers at once included), some without read_user_info (local users). Every
// callback must answer 303, every user ends with at most one active grant, and the counters
// equal a recount. Meaningful on PostgreSQL (row locks, READ COMMITTED); SQLite serializes
// writers and runs it as a plain regression test.
import t from 'tap'
import { createRollout } from '../../src/rollouts/rollouts.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { type TestApp, startTestApp } from '../helpers/app.js'
import { Agent } from '../helpers/browser-agent.js'
import { appId } from '../helpers/ledger.js'
import { answerConsent, signIn } from '../sandbox/helpers.js'

const USERS = ['cu_1001', 'cu_1002', 'cu_1003', 'cu_1004', 'cu_1005', 'cu_1006']
const FLOWS = 200
const IN_FLIGHT = 20

async function oneFlow(app: TestApp, i: number): Promise<number> {
  const agent = new Agent()
  const appKey = i % 3 === 0 ? 'production-v1' : 'production-v2'
  const start = await agent.get(`${app.url}/carta/connect?app=${appKey}`)
  if (start.status !== 303 || !start.location) return start.status
  await signIn(agent, `${app.url}/sandbox`, USERS[i % USERS.length]!)
  // Every seventh flow withholds read_user_info: a session-local user.
  const scopes = i % 7 === 0 ? ['read_issuer_info'] : undefined
  const back = await answerConsent(agent, start.location, { decision: 'allow', ...(scopes ? { scopes } : {}) })
  const res = await agent.get(back.toString())
  return res.status
}

t.test('200 concurrent connects: no 5xx, one active grant per user, exact counters', async (t) => {
  const app = await startTestApp(t)
  const now = app.clock.now()
  const rollouts = [
    await createRollout(
      app.db,
      {
        name: 'Cap tables',
        appId: await appId(app.db, 'production-v2'),
        scopes: ['read_issuer_capitalizationtablesummary'],
      },
      'operator:test',
      now,
    ),
    await createRollout(
      app.db,
      { name: 'Issuers', appId: await appId(app.db, 'production-v1'), scopes: ['read_issuer_info', 'read_user_info'] },
      'operator:test',
      now,
    ),
  ]
  const statuses = new Map<number, number>()
  let next = 0
  const worker = async () => {
    while (next < FLOWS) {
      const i = next++
      const status = await oneFlow(app, i).catch(() => -1)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  t.same(Object.fromEntries(statuses), { 303: FLOWS }, 'every callback redirected')
  const errors = app.logs.filter((l) => Number(l.level) >= 50)
  t.same(
    errors.map((l) => `${l.msg}: ${(l.err as { message?: string } | undefined)?.message}`),
    [],
    'no error log lines',
  )

  const doubles = await app.db
    .selectFrom('grants')
    .select(['user_id', (eb) => eb.fn.countAll().as('n')])
    .where('status', '=', 'active')
    .groupBy('user_id')
    .having((eb) => eb.fn.countAll(), '>', 1)
    .execute()
  t.same(doubles, [], 'at most one active grant per user')
  const carta = await app.db
    .selectFrom('end_users')
    .select(['carta_user_id', (eb) => eb.fn.countAll().as('n')])
    .where('carta_user_id', 'is not', null)
    .groupBy('carta_user_id')
    .execute()
  t.equal(carta.length, USERS.length, 'one end user per Carta user')
  for (const id of rollouts) {
    const stored = Object.fromEntries([...(await storedCounts(app.db, id))].filter(([, n]) => n !== 0))
    const exact = Object.fromEntries([...(await exactCounts(app.db, id))].filter(([, n]) => n !== 0))
    t.same(stored, exact, `rollout ${id}: counters equal a recount`)
  }
})
