// `import-grants`: every bad row is rejected with its line and reason and the rest imported; the
// same file twice changes nothing; exit statuses; dry run; no token in output, rejects or logs.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { importGrantsCommand } from '../../src/cli/import-grants.js'
import { openDatabase } from '../../src/db/index.js'
import { exactCounts, storedCounts } from '../../src/rollouts/membership.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { addGrant, addUser } from '../helpers/ledger.js'
import { auditRows, createRollout } from '../links/fixtures.js'

const V1 = 'scope-ledger-production-v1'
const V2 = 'scope-ledger-production-v2'
const SECRET = 'at-SECRET-never-shown'

function harness(app: TestApp) {
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const out: string[] = []
  const err: string[] = []
  const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }
  const run = (args: string[]) => importGrantsCommand(args, open, io)
  const write = (name: string, text: string | Buffer) => {
    const file = join(app.dataDir, name)
    writeFileSync(file, text)
    return file
  }
  return { run, write, out, err }
}

/** Delta-maintained counters against an exact recount (zero buckets aside). */
async function countsExact(app: TestApp, rolloutId: number) {
  const nonZero = (m: Map<string, number>) => Object.fromEntries([...m].filter(([, n]) => n !== 0))
  return {
    stored: nonZero(await storedCounts(app.db, rolloutId)),
    exact: nonZero(await exactCounts(app.db, rolloutId)),
  }
}

const jsonl = (rows: unknown[]) => `${rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n')}\n`

t.test('JSON Lines: good rows imported, each bad row rejected with its line and reason', async (t) => {
  const clock = new ManualClock(Date.parse('2025-06-01T12:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const h = harness(app)
  const file = h.write(
    'grants.jsonl',
    jsonl([
      {
        carta_user_id: 'u1',
        client_id: V2,
        email: 'u1@example.com',
        name: 'Ann',
        scopes: 'read_user_info read_issuer_info read_issuer_capitalizationtablesummary',
        granted_at: '2025-05-01T10:00:00Z',
        access_token: SECRET,
        refresh_token: 'rt-1',
        access_expires_at: '2025-05-01T11:00:00+00:00',
      },
      { carta_user_id: 'u2', client_id: V1, scopes: ['read_user_info'], access_token: 'at-2' },
      { carta_user_id: 3, client_id: V1, refresh_token: 'rt-3' },
      { carta_user_id: 'u4', client_id: 'nobody', access_token: SECRET },
      '{"carta_user_id": "u5", "client_id": ',
      { carta_user_id: 'u6', client_id: V1, granted_at: '2025-02-30T10:00:00Z' },
      { carta_user_id: 'u7', client_id: V1, granted_at: '2025-05-01' },
      { carta_user_id: 'u1', client_id: V1 },
      { carta_user_id: 'u8', client_id: V1, scopes: 'read_issuer_capitalizationtablesummary' },
      { carta_user_id: 'u9', client_id: V1, scope: 'read_user_info' },
      { client_id: V1 },
      { carta_user_id: 'u10', client_id: V1, email: 'a\u0000b' },
      '[1,2]',
      '',
      { carta_user_id: 'u11', client_id: V1, granted_at: '2030-01-01T00:00:00Z' },
      { carta_user_id: 'u12', client_id: V1, access_token: 'bad-tøken' },
      { carta_user_id: 'u13', client_id: V1, scopes: 42 },
    ]),
  )
  const rejects = join(app.dataDir, 'rejects.csv')
  t.equal(await h.run([file, '--rejects', rejects]), 1, 'some rows rejected: exit 1')
  t.match(h.out.join(''), /3 created, 0 superseded, 0 unchanged, 13 rejected/)
  const lines = readFileSync(rejects, 'utf8').trimEnd().split('\r\n')
  t.equal(lines[0], 'line,reason,carta_user_id,client_id')
  const byLine = new Map(lines.slice(1).map((l) => [Number(l.split(',')[0]), l]))
  t.match(byLine.get(4), /client_id is not the client id of an app/)
  t.match(byLine.get(5), /not valid JSON/)
  t.match(byLine.get(6), /granted_at is not an ISO 8601/)
  t.match(byLine.get(7), /granted_at is not an ISO 8601/)
  t.match(byLine.get(8), /duplicate user: line 1 already names carta_user_id u1/)
  t.match(byLine.get(9), /scope read_issuer_capitalizationtablesummary is not one of the scopes/)
  t.match(byLine.get(10), /unknown field ""scope""/)
  t.match(byLine.get(11), /carta_user_id is missing/)
  t.match(byLine.get(12), /email holds a control character/)
  t.match(byLine.get(13), /not a JSON object/)
  t.notOk(byLine.has(14), 'a blank line is no row')
  t.match(byLine.get(15), /granted_at is in the future/)
  t.match(byLine.get(16), /access_token holds characters/)
  t.match(byLine.get(17), /scopes must be a string or an array/)
  for (const text of [readFileSync(rejects, 'utf8'), h.out.join(''), h.err.join(''), JSON.stringify(app.logs)])
    t.notMatch(text, SECRET, 'no token in the rejects file, the output or the logs')

  const u1 = await app.db
    .selectFrom('end_users')
    .innerJoin('grants', 'grants.id', 'end_users.active_grant_id')
    .selectAll()
    .where('carta_user_id', '=', 'u1')
    .executeTakeFirstOrThrow()
  t.equal(u1.scopes_source, 'imported')
  t.equal(u1.email, 'u1@example.com')
  t.equal(u1.created_at, Date.parse('2025-05-01T10:00:00Z'), 'granted_at is the grant time')
  const tokens = await app.db
    .selectFrom('grant_tokens')
    .selectAll()
    .where('grant_id', '=', u1.active_grant_id)
    .executeTakeFirstOrThrow()
  t.notMatch(tokens.access_token, SECRET, 'stored encrypted')
  t.equal(app.app.deps.cipher.open({ keyId: tokens.key_id, value: tokens.access_token }), SECRET)
  t.equal(tokens.access_expires_at, Date.parse('2025-05-01T11:00:00Z'))

  const u3 = await app.db
    .selectFrom('end_users')
    .innerJoin('grants', 'grants.id', 'end_users.active_grant_id')
    .innerJoin('grant_tokens', 'grant_tokens.grant_id', 'grants.id')
    .selectAll()
    .where('carta_user_id', '=', '3')
    .executeTakeFirstOrThrow()
  t.equal(u3.scopes_source, 'unknown', 'no scopes: unknown')
  t.equal(u3.access_expires_at, 0, 'refresh token only: the access token counts as expired')

  // Unknown scopes count as lacking every required scope, with their own reason.
  const members = await app.db
    .selectFrom('rollout_members')
    .innerJoin('end_users', 'end_users.id', 'rollout_members.user_id')
    .select(['carta_user_id', 'state', 'reason', 'missing_scopes'])
    .where('rollout_id', '=', rollout.id)
    .orderBy('carta_user_id')
    .execute()
  t.same(
    members.map((m) => [m.carta_user_id, m.state, m.reason]),
    [
      ['3', 'lacking', 'scopes_unknown'],
      ['u1', 'covered', null],
      ['u2', 'lacking', 'missing_scopes'],
    ],
  )
  const counts = await countsExact(app, rollout.id)
  t.same(counts.stored, counts.exact, 'counters equal a recount')
  t.match(counts.exact, { members: 3, covered: 1, lacking: 2 })
  const runs = await app.db.selectFrom('import_runs').selectAll().execute()
  t.match(runs, [{ status: 'done', file_name: 'grants.jsonl', created: 3, rejected: 13, actor: 'cli' }])
  t.match(await auditRows(app.db, 'grants.imported'), [{ details: { runId: runs[0]!.id, created: 3, rejected: 13 } }])
  t.equal((await auditRows(app.db, 'grant.created')).length, 3, 'one audit event per imported grant')

  // The same file again: nothing changes.
  const before = await app.db.selectFrom('grants').select('id').execute()
  h.out.length = 0
  t.equal(await h.run([file, '--rejects', rejects]), 1)
  t.match(h.out.join(''), /0 created, 0 superseded, 3 unchanged, 13 rejected/)
  t.same(await app.db.selectFrom('grants').select('id').execute(), before, 'no grant written the second time')
  t.equal((await auditRows(app.db, 'grant.created')).length, 3)
})

t.test('CSV: BOM, CRLF and quoted fields read; bad CSV lines rejected; header problems exit 2', async (t) => {
  const clock = new ManualClock(Date.parse('2025-06-01T12:00:00Z'))
  const app = await startTestApp(t, { clock })
  const h = harness(app)
  const csv = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from(
      [
        'carta_user_id,client_id,name,email,scopes,access_token',
        `c1,${V1},"Doe, Jane","jane@example.com","read_user_info read_issuer_info",at-c1`,
        `c2,${V1},"Say ""hi""",,,at-c2`,
        `c3,${V1},"unclosed,x@example.com,,at-c3`,
        `c4,${V1},bad"quote,,,at-c4`,
        `c5,${V1},too,few`,
        `c6,${V1},"x"y,,,at-c6`,
        '',
      ].join('\r\n'),
    ),
    Buffer.from(`c7,${V1},\xff\n`, 'latin1'),
  ])
  const file = h.write('grants.csv', csv)
  t.equal(await h.run([file]), 1)
  t.match(h.out.join(''), /2 created, 0 superseded, 0 unchanged, 5 rejected/)
  const errors = h.err.join('')
  t.match(errors, /line 4: the line is not valid CSV: a quoted field is not closed/)
  t.match(errors, /line 5: the line is not valid CSV: a field that holds a double quote must be quoted/)
  t.match(errors, /line 6: the line has 4 fields; the header has 6/)
  t.match(errors, /line 7: the line is not valid CSV: a quoted field is followed by text/)
  t.match(errors, /line 8: the line is not valid UTF-8/)
  const users = await app.db.selectFrom('end_users').select(['carta_user_id', 'name', 'email']).orderBy('id').execute()
  t.same(users, [
    { carta_user_id: 'c1', name: 'Doe, Jane', email: 'jane@example.com' },
    { carta_user_id: 'c2', name: 'Say "hi"', email: null },
  ])

  h.err.length = 0
  t.equal(await h.run([h.write('nohead.csv', `c9,${V1}\n`)]), 2, 'header without the required columns')
  t.match(h.err.join(''), /unknown column "c9"/)
  t.equal(await h.run([h.write('dup.csv', 'carta_user_id,client_id,client_id\n')]), 2)
  t.equal(await h.run([h.write('missing.csv', 'carta_user_id,email\n')]), 2)
  t.match(h.err.join(''), /no "client_id" column/)
  t.equal((await app.db.selectFrom('import_runs').selectAll().execute()).length, 1, 'a refused header leaves no run')
})

t.test('options and unreadable files exit 2; dry run writes nothing', async (t) => {
  const clock = new ManualClock(Date.parse('2025-06-01T12:00:00Z'))
  const app = await startTestApp(t, { clock })
  const h = harness(app)
  const file = h.write('g.jsonl', jsonl([{ carta_user_id: 'd1', client_id: V1, access_token: 'at' }]))
  t.equal(await h.run([]), 2, 'no file')
  t.equal(await h.run([file, '--bogus']), 2, 'unknown option')
  t.equal(await h.run([file, '--format', 'xml']), 2, 'bad format')
  for (const size of ['0', '1.5', 'x', '20001'])
    t.equal(await h.run([file, '--batch-size', size]), 2, `--batch-size ${size}`)
  t.match(h.err.join(''), /--batch-size must be a whole number from 1 to 20000/)
  t.equal(await h.run([h.write('g.txt', 'x')]), 2, 'format not guessable')
  t.equal(await h.run([join(app.dataDir, 'absent.jsonl')]), 2, 'missing file')
  t.equal(await h.run([app.dataDir, '--format', 'csv']), 2, 'a directory')
  t.equal(await h.run([file, '--rejects', join(app.dataDir, 'no', 'such', 'dir.csv')]), 2, 'rejects not writable')
  t.equal(await h.run([h.write('g.txt', jsonl([{ carta_user_id: 'd2', client_id: V1 }])), '--format', 'jsonl']), 0)

  h.out.length = 0
  t.equal(await h.run([file, '--dry-run']), 0)
  t.match(h.out.join(''), /Dry run \(nothing written\): 1 created/)
  t.equal(
    (await app.db.selectFrom('end_users').select('carta_user_id').where('carta_user_id', '=', 'd1').execute()).length,
    0,
    'dry run wrote no user',
  )
  t.equal((await app.db.selectFrom('import_runs').selectAll().execute()).length, 1, 'dry run wrote no run')
  t.equal(await h.run([file, '--batch-size', '1']), 0, 'every row imported: exit 0')
})

t.test('newer grants stay; older active grants are superseded without revoking their tokens', async (t) => {
  const clock = new ManualClock(Date.parse('2025-06-01T12:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const h = harness(app)
  const newer = await addUser(app.db, clock.now(), { carta: 'newer' })
  await addGrant(app.app.deps, newer, 'production-v2', rollout.scopes, Date.parse('2025-05-20T00:00:00Z'))
  const older = await addUser(app.db, clock.now(), { carta: 'older' })
  const olderGrant = await addGrant(
    app.app.deps,
    older,
    'production-v1',
    ['read_user_info'],
    Date.parse('2025-01-01T00:00:00Z'),
  )
  const file = h.write(
    'g.jsonl',
    jsonl([
      { carta_user_id: 'newer', client_id: V1, granted_at: '2025-05-01T00:00:00Z', access_token: 'x' },
      {
        carta_user_id: 'older',
        client_id: V2,
        granted_at: '2025-05-01T00:00:00Z',
        access_token: 'y',
        scopes: rollout.scopes,
      },
    ]),
  )
  t.equal(await h.run([file]), 0)
  t.match(h.out.join(''), /0 created, 1 superseded, 1 unchanged, 0 rejected/)
  const grants = await app.db.selectFrom('grants').select(['id', 'user_id', 'status']).orderBy('id').execute()
  t.match(
    grants.find((g) => g.id === olderGrant),
    { status: 'superseded' },
  )
  t.equal(grants.filter((g) => g.user_id === newer && g.status === 'active').length, 1, 'the newer grant stays')
  t.equal(
    (await app.db.selectFrom('token_revocations').selectAll().execute()).length,
    0,
    'nothing queued for revocation',
  )
  t.equal(
    (await app.db.selectFrom('grant_tokens').selectAll().where('grant_id', '=', olderGrant).execute()).length,
    0,
    'the superseded grant keeps no live tokens here',
  )
  const counts = await countsExact(app, rollout.id)
  t.same(counts.stored, counts.exact, 'counters equal a recount')
  const member = await app.db
    .selectFrom('rollout_members')
    .selectAll()
    .where('rollout_id', '=', rollout.id)
    .where('user_id', '=', older)
    .executeTakeFirstOrThrow()
  t.equal(member.state, 'covered')
})
