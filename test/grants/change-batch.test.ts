// The import's batch path (recordImportedGrants) writes exactly what the row-by-row path through
// changeGrant writes: the same file imported both ways into two ledgers that start identical gives
// the same users, grants, scopes, tokens, audit events, rollout members and counters (equal to a
// recount) and webhook outbox, once ids are replaced by what they name. Then the same file again
// changes nothing.
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import type { Db } from '../../src/db/index.js'
import { importGrants } from '../../src/imports/import.js'
import { silentLogger } from '../../src/log.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { addEndpoint } from '../../src/webhooks/endpoints.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { addGrant, addUser, breakGrant } from '../helpers/ledger.js'
import { createRollout } from '../links/fixtures.js'

const ROWS = 3000
const EXISTING = 400
const NOW = Date.parse('2025-06-01T12:00:00Z')
const CLIENTS = ['scope-ledger-production-v1', 'scope-ledger-production-v2', 'scope-ledger-playground']
const V2_SCOPES = ['read_issuer_capitalizationtablesummary', 'read_issuer_info', 'read_user_info']

/** The same ledger in both apps: users who connected before, two active rollouts, a webhook endpoint. */
async function prepare(app: TestApp): Promise<number[]> {
  const rollouts = [
    (await createRollout(app.db, { name: 'v2 everything', now: NOW })).id,
    (await createRollout(app.db, { name: 'issuer info', scopes: ['read_issuer_info'], now: NOW })).id,
  ]
  await addEndpoint(
    app.app.deps.db,
    app.app.deps.cipher,
    { url: 'https://hooks.example.com/ledger', events: [], actor: 'test' },
    NOW,
  )
  for (let i = 0; i < EXISTING; i++) {
    // Every 5th existing user has no email yet (the import fills it in); every 7th broke.
    const user = await addUser(app.db, NOW, { carta: `u${i * 5}`, ...(i % 5 ? { email: `old${i}@example.com` } : {}) })
    // Half connected long ago (the import supersedes them), half after the file's date (unchanged).
    const at = i % 2 ? Date.parse('2024-01-01T00:00:00Z') : Date.parse('2025-05-20T00:00:00Z')
    await addGrant(
      app.app.deps,
      user,
      i % 3 ? 'production-v1' : 'production-v2',
      i % 3 ? ['read_user_info'] : V2_SCOPES,
      at,
    )
    if (i % 7 === 0) await breakGrant(app.app.deps, user, NOW)
  }
  await app.db.updateTable('oauth_apps').set({ status: 'retired' }).where('key', '=', 'playground').execute()
  return rollouts
}

function file(): string {
  const lines: string[] = []
  for (let i = 0; i < ROWS; i++) {
    const client = CLIENTS[i % 3 === 0 ? 0 : i % 11 === 0 ? 2 : 1]!
    const scopes =
      i % 4 === 0
        ? undefined
        : client.endsWith('v2')
          ? i % 8 === 1
            ? ['read_user_info']
            : V2_SCOPES
          : ['read_user_info', ...(i % 2 ? ['read_issuer_info'] : [])]
    lines.push(
      JSON.stringify({
        carta_user_id: `u${i}`,
        client_id: client,
        email: `u${i}@example.com`,
        ...(i % 6 ? { name: `User ${i}` } : {}),
        ...(scopes ? { scopes } : {}),
        ...(i % 10 !== 7 ? { granted_at: '2025-05-01T00:00:00Z' } : {}),
        ...(i % 9 === 0
          ? {}
          : i % 9 === 1
            ? { refresh_token: `rt-${i}` }
            : { access_token: `at-${i}`, refresh_token: `rt-${i}` }),
        ...(i % 9 > 1 ? { access_expires_at: '2025-05-01T01:00:00Z' } : {}),
      }),
    )
  }
  return `${lines.join('\n')}\n`
}

/** Every table an import writes, with ids replaced by what they name (ids may differ between paths). */
async function snapshot(app: TestApp) {
  const db: Db = app.db
  const users = new Map(
    (await db.selectFrom('end_users').select(['id', 'carta_user_id']).execute()).map((u) => [u.id, u.carta_user_id]),
  )
  const grantRows = await db.selectFrom('grants').selectAll().orderBy('id').execute()
  const grantKey = new Map(
    grantRows.map((g) => [g.id, `${users.get(g.user_id)}@${g.created_at}:${g.import_fingerprint ?? g.app_id}`]),
  )
  const key = (id: number | null) => (id === null ? null : (grantKey.get(id) ?? `missing ${id}`))
  const sorted = <T>(rows: T[]) => rows.map((r) => JSON.stringify(r)).sort()
  const rollouts = new Map(
    (await db.selectFrom('rollouts').select(['id', 'name']).execute()).map((r) => [r.id, r.name]),
  )
  const cipher = app.app.deps.cipher
  return {
    users: sorted(
      (await db.selectFrom('end_users').selectAll().execute()).map(({ id, active_grant_id, ...u }) => ({
        ...u,
        active: key(active_grant_id),
      })),
    ),
    grants: sorted(
      grantRows.map(({ id, user_id, superseded_by, import_run_id, ...g }) => ({
        ...g,
        key: key(id),
        user: users.get(user_id),
        supersededBy: key(superseded_by),
        imported: import_run_id !== null,
      })),
    ),
    scopes: sorted(
      (await db.selectFrom('grant_scopes').selectAll().execute()).map((s) => ({
        grant: key(s.grant_id),
        scope: s.scope,
      })),
    ),
    tokens: sorted(
      (await db.selectFrom('grant_tokens').selectAll().execute()).map((tk) => ({
        grant: key(tk.grant_id),
        access: cipher.open({ keyId: tk.key_id, value: tk.access_token }),
        refresh: tk.refresh_token === null ? null : cipher.open({ keyId: tk.key_id, value: tk.refresh_token }),
        expires: tk.access_expires_at,
        type: tk.token_type,
        version: tk.version,
      })),
    ),
    revocations: (await db.selectFrom('token_revocations').select('id').execute()).length,
    audit: sorted(
      (await db.selectFrom('audit_events').selectAll().where('type', 'like', 'grant.%').execute()).map((a) => {
        const details = JSON.parse(a.details) as Record<string, unknown>
        if (typeof details.supersededBy === 'number') details.supersededBy = key(details.supersededBy)
        if (details.importRunId !== undefined) details.importRunId = 'run'
        return {
          type: a.type,
          actor: a.actor,
          user: users.get(a.user_id!),
          grant: key(a.grant_id),
          app: a.app_id,
          details,
        }
      }),
    ),
    members: sorted(
      (await db.selectFrom('rollout_members').selectAll().execute()).map(({ rollout_id, user_id, ...m }) => ({
        ...m,
        rollout: rollouts.get(rollout_id),
        user: users.get(user_id),
      })),
    ),
    missing: sorted(
      (await db.selectFrom('rollout_member_missing').selectAll().execute()).map((m) => [
        rollouts.get(m.rollout_id),
        m.scope,
        users.get(m.user_id),
      ]),
    ),
    counts: sorted(
      (await db.selectFrom('rollout_counts').selectAll().where('count', '<>', 0).execute()).map((c) => [
        rollouts.get(c.rollout_id),
        c.bucket,
        Number(c.count),
      ]),
    ),
    webhooks: sorted(
      (await db.selectFrom('webhook_events').selectAll().execute()).map((e) => {
        const payload = JSON.parse(e.payload) as { data: Record<string, unknown> }
        const { id: _, grantId, ...data } = payload.data
        return { type: e.type, user: users.get(e.user_id!), data: { ...data, grant: key(grantId as number) } }
      }),
    ),
    deliveries: sorted(
      (
        await db
          .selectFrom('webhook_deliveries')
          .innerJoin('webhook_events', 'webhook_events.id', 'webhook_deliveries.event_id')
          .select(['webhook_events.type', 'webhook_deliveries.user_id', 'webhook_deliveries.status'])
          .execute()
      ).map((d) => [d.type, users.get(d.user_id), d.status]),
    ),
  }
}

t.test('batch path and row-by-row path write the same rows', async (t) => {
  const [byRow, byBatch] = [
    await startTestApp(t, { clock: new ManualClock(NOW) }),
    await startTestApp(t, { clock: new ManualClock(NOW) }),
  ]
  const rollouts = await prepare(byRow)
  await prepare(byBatch)
  const text = file()
  const run = (app: TestApp, options: { batchSize: number; rowByRow?: boolean }) =>
    importGrants({ ...app.app.deps, log: silentLogger }, [Buffer.from(text)], {
      format: 'jsonl',
      fileName: 'grants.jsonl',
      actor: 'cli',
      ...options,
    })
  const expected = await run(byRow, { batchSize: 500, rowByRow: true })
  // An odd batch size: batches straddle the existing users and the SQL chunks.
  const actual = await run(byBatch, { batchSize: 777 })
  t.same(
    { created: actual.created, superseded: actual.superseded, unchanged: actual.unchanged, rejected: actual.rejected },
    { created: expected.created, superseded: expected.superseded, unchanged: expected.unchanged, rejected: 0 },
    'the same outcomes',
  )
  t.ok(
    expected.superseded > 50 && expected.unchanged > 50 && expected.created > 2000,
    `a mix of every outcome: ${JSON.stringify(expected)}`,
  )

  const a = await snapshot(byRow)
  const b = await snapshot(byBatch)
  for (const table of Object.keys(a) as Array<keyof typeof a>) t.same(b[table], a[table], `${table}: the same rows`)
  t.ok(
    a.webhooks.some((w) => w.includes('rollout.user_covered')),
    'users newly covered are announced',
  )
  t.ok(a.members.some((m) => m.includes('app_retired')) && a.members.some((m) => m.includes('scopes_unknown')))
  t.equal(a.revocations, 0, 'an import revokes nothing')

  for (const app of [byRow, byBatch])
    for (const id of rollouts) {
      const nonZero = (m: Map<string, number>) => Object.fromEntries([...m].filter(([, n]) => n !== 0))
      t.same(
        nonZero(await storedCounts(app.db, id)),
        nonZero(await exactCounts(app.db, id)),
        'counters equal a recount',
      )
    }

  // The same file again through the batch path: every row unchanged, not one row written.
  const again = await run(byBatch, { batchSize: 2000 })
  t.match(again, { created: 0, superseded: 0, unchanged: ROWS })
  const c = await snapshot(byBatch)
  for (const table of Object.keys(b) as Array<keyof typeof b>) t.same(c[table], b[table], `${table}: unchanged`)
})

t.test('a dry run through the batch path writes nothing and counts the same', async (t) => {
  const app = await startTestApp(t, { clock: new ManualClock(NOW) })
  await prepare(app)
  const before = await snapshot(app)
  const result = await importGrants({ ...app.app.deps, log: silentLogger }, [Buffer.from(file())], {
    format: 'jsonl',
    fileName: 'grants.jsonl',
    actor: 'cli',
    dryRun: true,
    batchSize: 2000,
  })
  t.equal(result.runId, null)
  t.equal(result.created + result.superseded + result.unchanged, ROWS)
  t.ok(result.superseded > 0)
  t.same(await snapshot(app), before, 'nothing written')
})
