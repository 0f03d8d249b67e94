// POST /admin/imports/upload against the real server: JSON Lines and CSV uploads land on the run's
// page with the summary, a dry run writes nothing, rejected lines download as CSV without tokens,
// and every bad upload (too large, not multipart, no file, empty, not text, unknown format, no CSRF
// token, a viewer, a client that goes away halfway) gets its clear 4xx and writes nothing.
import { request as httpRequest } from 'node:http'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createOperator } from '../../../../src/admin/operators.js'
import { startTestApp, type TestApp } from '../../../helpers/app.js'
import { Agent, hiddenField } from '../../../helpers/browser-agent.js'
import { OPERATOR_PASSWORD, signedInOperator } from '../../../helpers/ledger.js'

const V1 = 'scope-ledger-production-v1'

function form(
  csrf: string | null,
  file: { name: string; body: string | Uint8Array<ArrayBuffer> } | null,
  extra: Record<string, string> = {},
) {
  const data = new FormData()
  if (csrf !== null) data.append('_csrf', csrf)
  for (const [k, v] of Object.entries(extra)) data.append(k, v)
  if (file) data.append('file', new Blob([file.body]), file.name)
  return data
}

async function upload(agent: Agent, app: TestApp, data: FormData) {
  return agent.request(`${app.url}/admin/imports/upload`, { method: 'POST', body: data })
}

async function csrfOf(agent: Agent, app: TestApp): Promise<string> {
  const page = await agent.get(`${app.url}/admin/imports`)
  t.equal(page.status, 200)
  return hiddenField(page.text.slice(page.text.indexOf('/admin/imports/upload')), '_csrf')
}

const count = async (app: TestApp, table: 'import_runs' | 'end_users' | 'import_rejects') =>
  Number(
    (
      await app.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  )

t.test('JSON Lines and CSV uploads, dry run, rejects download', async (t) => {
  const app = await startTestApp(t)
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const csrf = await csrfOf(ops, app)

  // Dry run first: the summary, and nothing written.
  const jsonl = [
    { carta_user_id: 'u1', client_id: V1, access_token: 'at-one', scopes: 'read_user_info' },
    { carta_user_id: 'u2', client_id: V1 },
    { carta_user_id: 'u3', client_id: 'nobody', access_token: 'secret-token-xyz' },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n')
  const dry = await upload(ops, app, form(csrf, { name: 'estate.jsonl', body: jsonl }, { dry_run: 'on' }))
  t.equal(dry.status, 200, 'a dry run answers with its summary')
  t.match(dry.text, 'Nothing was written')
  t.match(dry.text, /<td data-label="Created">2<\/td>/)
  t.match(dry.text, /<td data-label="Rejected">1<\/td>/)
  t.match(dry.text, /<td data-label="Line" class="mono">3<\/td>/, 'the rejected line is listed')
  t.notMatch(dry.text, 'secret-token-xyz', 'never a token on the page')
  t.equal(await count(app, 'import_runs'), 0, 'a dry run leaves no run')
  t.equal(await count(app, 'end_users'), 0, 'and no user')

  const res = await upload(ops, app, form(csrf, { name: 'estate.jsonl', body: jsonl }))
  t.equal(res.status, 303)
  t.match(res.location ?? '', /^\/admin\/imports\/runs\/\d+$/, "to the run's page")
  const page = await ops.follow(res)
  t.equal(page.status, 200)
  t.match(page.text, /Import run #\d+/)
  t.match(page.text, /<td data-label="Created">2<\/td>/)
  t.match(page.text, /<td data-label="Rejected">1<\/td>/)
  t.match(page.text, 'operator:ops')
  const run = await app.db.selectFrom('import_runs').selectAll().executeTakeFirstOrThrow()
  t.match(run, {
    actor: 'operator:ops',
    file_name: 'estate.jsonl',
    format: 'jsonl',
    status: 'done',
    created: 2,
    rejected: 1,
  })
  const audit = await app.db
    .selectFrom('audit_events')
    .select(['actor'])
    .where('type', '=', 'grants.imported')
    .execute()
  t.same(audit, [{ actor: 'operator:ops' }], 'audited as the operator')

  const csv = await ops.get(`${app.url}/admin/imports/runs/${run.id}/rejects.csv`)
  t.equal(csv.status, 200)
  t.match(csv.headers.get('content-type') ?? '', 'text/csv')
  const lines = csv.text.trim().split('\r\n')
  t.equal(lines[0], 'line,reason,carta_user_id,client_id')
  t.equal(lines.length, 2, 'one rejected line')
  t.match(lines[1], /^3,.*,u3,nobody$/)
  t.notMatch(csv.text, 'secret-token-xyz', 'never a token in the rejects')
  const list = await ops.get(`${app.url}/admin/imports`)
  t.match(list.text, `/admin/imports/runs/${run.id}/rejects.csv`, 'the list links the rejects')

  // The same file again changes nothing; CSV by its name.
  const again = await ops.follow(await upload(ops, app, form(csrf, { name: 'estate.jsonl', body: jsonl })))
  t.match(again.text, /<td data-label="Unchanged">2<\/td>/)
  const csvFile = `carta_user_id,client_id,refresh_token\r\nc1,${V1},rt-1\r\nc2,${V1},rt-2\r\n`
  const fromCsv = await ops.follow(await upload(ops, app, form(csrf, { name: 'people.CSV', body: csvFile })))
  t.match(fromCsv.text, /<td data-label="Created">2<\/td>/)
  t.match(fromCsv.text, /<td data-label="Rejected">0<\/td>/)
  // A chosen format wins over the name.
  const chosen = await upload(
    ops,
    app,
    form(csrf, { name: 'export.txt', body: `{"carta_user_id":"x1","client_id":"${V1}"}\n` }, { format: 'jsonl' }),
  )
  t.equal(chosen.status, 303)
  t.equal(await count(app, 'end_users'), 5)

  const missing = await ops.get(`${app.url}/admin/imports/runs/999`)
  t.equal(missing.status, 404)
  t.match(missing.text, 'Import run not found')
  t.same(readdirSync(join(app.dataDir, 'uploads')), [], 'no spool file is left')
})

t.test('bad uploads: clear 4xx pages, nothing written', async (t) => {
  const app = await startTestApp(t, { env: { IMPORT_UPLOAD_MAX_BYTES: '4096' } })
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const csrf = await csrfOf(ops, app)
  const row = `{"carta_user_id":"u1","client_id":"${V1}","access_token":"at-1"}\n`

  const big = await upload(ops, app, form(csrf, { name: 'big.jsonl', body: row.repeat(200) }))
  t.equal(big.status, 413, 'too large (declared length)')
  t.match(big.text, 'The file is too large')
  t.match(big.text, 'limited to 4 KB')

  // No declared length (chunked): the stream limit catches it.
  const chunked = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const boundary = 'b0undary'
    const req = httpRequest(`${app.url}/admin/imports/upload`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'transfer-encoding': 'chunked',
        cookie: `sl_session=${ops.cookieValue(app.url, 'sl_session')}`,
      },
    })
    req.on('response', (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n`)
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n`)
    for (let i = 0; i < 100; i++) req.write(row)
    req.end(`\r\n--${boundary}--\r\n`)
  })
  t.equal(chunked.status, 413, 'too large (streamed)')

  const notMultipart = await ops.post(`${app.url}/admin/imports/upload`, { _csrf: csrf, file: 'x' })
  t.equal(notMultipart.status, 400, 'not multipart')
  t.match(notMultipart.text, 'multipart/form-data')
  const noFile = await upload(ops, app, form(csrf, null))
  t.equal(noFile.status, 400, 'no file part')
  t.match(noFile.text, 'Choose a file to import')
  const unchosen = await upload(ops, app, form(csrf, { name: '', body: '' }))
  t.equal(unchosen.status, 400, 'the form sent without choosing a file')
  const empty = await upload(ops, app, form(csrf, { name: 'empty.jsonl', body: '' }))
  t.equal(empty.status, 400)
  t.match(empty.text, 'is empty')
  const binary = await upload(
    ops,
    app,
    form(csrf, { name: 'grants.csv', body: new Uint8Array([0x50, 0x4b, 3, 4, 0, 0]) }),
  )
  t.equal(binary.status, 400)
  t.match(binary.text, 'not a text file')
  const unknown = await upload(ops, app, form(csrf, { name: 'grants.xlsx', body: row }))
  t.equal(unknown.status, 400)
  t.match(unknown.text, 'Cannot tell the format')
  const badFormat = await upload(ops, app, form(csrf, { name: 'grants.jsonl', body: row }, { format: 'xml' }))
  t.equal(badFormat.status, 400)
  const badHeader = await upload(ops, app, form(csrf, { name: 'grants.csv', body: 'email,name\r\na@b,c\r\n' }))
  t.equal(badHeader.status, 400, 'a CSV without the required columns')
  t.match(badHeader.text, 'This file cannot be imported')

  const two = form(csrf, { name: 'a.jsonl', body: row })
  two.append('file', new Blob([row]), 'b.jsonl')
  const twoFiles = await upload(ops, app, two)
  t.equal(twoFiles.status, 400, 'two files')
  t.match(twoFiles.text, 'upload one file')

  const noCsrf = await upload(ops, app, form(null, { name: 'grants.jsonl', body: row }))
  t.equal(noCsrf.status, 403, 'no CSRF token')
  t.match(noCsrf.text, 'This form has expired')
  const wrongCsrf = await upload(ops, app, form('forged', { name: 'grants.jsonl', body: row }))
  t.equal(wrongCsrf.status, 403, 'a wrong token')
  const header = await ops.request(`${app.url}/admin/imports/upload`, {
    method: 'POST',
    body: form(null, { name: 'grants.jsonl', body: row }),
    headers: { 'x-csrf-token': csrf },
  })
  t.equal(header.status, 303, 'the token may come as the X-CSRF-Token header')
  await app.db.deleteFrom('import_runs').execute()

  await createOperator(app.db, 'watcher', OPERATOR_PASSWORD, app.clock.now(), 'viewer')
  const viewer = new Agent()
  const signIn = await viewer.get(`${app.url}/admin/sign-in`)
  await viewer.post(`${app.url}/admin/sign-in`, {
    _csrf: hiddenField(signIn.text, '_csrf'),
    username: 'watcher',
    password: OPERATOR_PASSWORD,
  })
  const viewerPage = await viewer.get(`${app.url}/admin/imports`)
  t.notMatch(viewerPage.text, 'Import a file', 'a viewer sees no upload form')
  const refused = await upload(viewer, app, form(hiddenField(viewerPage.text, '_csrf'), { name: 'g.jsonl', body: row }))
  t.equal(refused.status, 403)
  t.match(refused.text, 'Not allowed for your role')

  t.equal(await count(app, 'import_runs'), 0, 'no run from any bad upload')
  t.equal(await count(app, 'end_users'), 1, 'only the header-token upload wrote its row')
  t.same(readdirSync(join(app.dataDir, 'uploads')), [], 'no spool file is left')
})

t.test('a client that goes away halfway: no run, no crash', async (t) => {
  const app = await startTestApp(t)
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const csrf = await csrfOf(ops, app)
  const boundary = 'b0undary'
  const rows = Array.from({ length: 2000 }, (_, i) => `{"carta_user_id":"a${i}","client_id":"${V1}"}\n`).join('')
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.jsonl"\r\n\r\n`
  const tail = `\r\n--${boundary}--\r\n`
  const total = Buffer.byteLength(head) + Buffer.byteLength(rows) + Buffer.byteLength(tail)
  await new Promise<void>((resolve) => {
    const req = httpRequest(`${app.url}/admin/imports/upload`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(total),
        cookie: `sl_session=${ops.cookieValue(app.url, 'sl_session')}`,
      },
    })
    req.on('error', () => resolve())
    req.on('response', () => resolve())
    req.write(head)
    req.write(rows.slice(0, rows.length / 2), () => {
      setTimeout(() => {
        req.destroy()
        resolve()
      }, 200)
    })
  })
  // The server notices, drops the spool and stays up.
  for (let i = 0; i < 50 && readdirSync(join(app.dataDir, 'uploads')).length > 0; i++) await sleep(100)
  t.same(readdirSync(join(app.dataDir, 'uploads')), [], 'the spool file is removed')
  t.equal(await count(app, 'import_runs'), 0, 'no run')
  t.equal(await count(app, 'end_users'), 0, 'no row')
  const after = await ops.get(`${app.url}/admin/imports`)
  t.equal(after.status, 200, 'the server still answers')
  t.ok(
    app.logs.some((l) => l.msg === 'import upload interrupted'),
    'the upload was cut off while being spooled',
  )
  t.notOk(
    app.logs.some((l) => l.level === 50),
    'no error logged (an interrupted upload is a warning)',
  )
})

t.test('a long import goes on in the background: the run page shows it moving, then done', async (t) => {
  const app = await startTestApp(t, { env: { IMPORT_UPLOAD_WAIT_MS: '0' } })
  const ops = await signedInOperator(app.db, app.url, app.clock.now())
  const csrf = await csrfOf(ops, app)
  const rows = Array.from(
    { length: 5000 },
    (_, i) => `{"carta_user_id":"b${i}","client_id":"${V1}","refresh_token":"rt-${i}"}\n`,
  ).join('')
  const res = await upload(ops, app, form(csrf, { name: 'big.jsonl', body: `${rows}{"carta_user_id":"bad"}\n` }))
  t.equal(res.status, 303, 'answered before the import ended')
  const runId = Number(/\/admin\/imports\/runs\/(\d+)$/.exec(res.location ?? '')?.[1])
  const first = await ops.get(`${app.url}/admin/imports/runs/${runId}`)
  t.equal(first.status, 200)
  // On SQLite the import yields the one connection between batches: pages answer meanwhile.
  t.match(first.text, 'Still importing', 'the page says it is still going')
  t.equal(first.headers.get('refresh'), '3', 'and reloads itself')
  let run = await app.db.selectFrom('import_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
  for (let i = 0; i < 3000 && run.status === 'running'; i++) {
    await sleep(100)
    run = await app.db.selectFrom('import_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
  }
  t.match(run, { status: 'done', created: 5000, rejected: 1, actor: 'operator:ops' })
  const last = await ops.get(`${app.url}/admin/imports/runs/${runId}`)
  t.notMatch(last.text, 'Still importing')
  t.equal(last.headers.get('refresh'), null)
  t.match(last.text, /<td data-label="Line" class="mono">5001<\/td>/, 'its rejected line')
  t.same(readdirSync(join(app.dataDir, 'uploads')), [], 'the spool is removed when the import ends')
})
