// Upload benchmark: `npx tsx test/bench/import-upload.ts`. Starts the real app on a loopback port
// (SQLite file, or PostgreSQL with TEST_DATABASE_URL), writes a JSON Lines file of BENCH_ROWS grants
// (tokens on every row, as test/bench/import.ts), signs in an operator and uploads the file through
// POST /admin/imports/upload as a browser would (multipart, streamed from disk), then prints the
// file size, seconds until the form was answered and until the run ended, rows/s and the process's
// peak RSS growth, which stays far below the file size: the upload is streamed to the spool, never
// held in memory.
//   BENCH_ROWS=60000   rows in the file (default 60,000, about 25 MB)
import { once } from 'node:events'
import { createReadStream, createWriteStream, mkdtempSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { startTestApp } from '../helpers/app.js'
import { hiddenField } from '../helpers/browser-agent.js'
import { signInOperator } from '../helpers/connect.js'

const ROWS = Number(process.env.BENCH_ROWS ?? 60_000)
const teardowns: Array<() => unknown> = []
const app = await startTestApp(
  { teardown: (fn) => teardowns.push(fn) },
  { env: { IMPORT_UPLOAD_MAX_BYTES: String(200 * 1024 * 1024), LOG_LEVEL: 'warn' } },
)
const dir = mkdtempSync(join(tmpdir(), 'scope-ledger-bench-upload-'))
const file = join(dir, 'grants.jsonl')
const out = createWriteStream(file)
const expires = new Date(Date.now() + 3_600_000).toISOString()
for (let i = 0; i < ROWS; i++) {
  const line = JSON.stringify({
    carta_user_id: `bench-${i}`,
    client_id: i % 3 ? 'scope-ledger-production-v2' : 'scope-ledger-production-v1',
    email: `user${i}@example.com`,
    name: `User ${i}`,
    ...(i % 2 ? { scopes: 'read_user_info' } : {}),
    granted_at: '2025-01-15T10:00:00Z',
    access_token: `at-${i}-${'x'.repeat(80)}`,
    refresh_token: `rt-${i}-${'y'.repeat(80)}`,
    access_expires_at: expires,
  })
  if (!out.write(`${line}\n`)) await once(out, 'drain')
}
out.end()
await once(out, 'finish')
const size = statSync(file).size

const ops = await signInOperator(app)
const page = await ops.get(`${app.url}/admin/imports`)
const csrf = hiddenField(page.text.slice(page.text.indexOf('/admin/imports/upload')), '_csrf')
const boundary = `bench${Date.now()}`
const head = Buffer.from(
  `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="grants.jsonl"\r\n` +
    'Content-Type: application/x-ndjson\r\n\r\n',
)
const tail = Buffer.from(`\r\n--${boundary}--\r\n`)

global.gc?.()
const baseRss = process.memoryUsage().rss
let peak = baseRss
const sample = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 50)
const started = Date.now()
let uploadedAt = 0
const answer = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
  const req = request(`${app.url}/admin/imports/upload`, {
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(head.length + size + tail.length),
      cookie: `sl_session=${ops.cookieValue(app.url, 'sl_session')}`,
    },
  })
  req.on('response', (res) => {
    res.resume()
    resolve({ status: res.statusCode ?? 0, location: res.headers.location })
  })
  req.on('error', reject)
  const body = new PassThrough()
  body.pipe(req)
  body.write(head)
  const fileStream = createReadStream(file)
  fileStream.on('end', () => {
    uploadedAt = Date.now()
    body.end(tail)
  })
  fileStream.pipe(body, { end: false })
})
const answeredSeconds = (Date.now() - started) / 1000
// The upload is spooled by now: growth up to here is the upload's (the rest is the import's own).
const peakAtAnswer = peak
// A long import goes on after the answer (IMPORT_UPLOAD_WAIT_MS): wait for its run to end.
let run = await app.db.selectFrom('import_runs').selectAll().executeTakeFirst()
while (run?.status === 'running') {
  await new Promise((r) => setTimeout(r, 250))
  run = await app.db.selectFrom('import_runs').selectAll().executeTakeFirst()
}
clearInterval(sample)
const seconds = (Date.now() - started) / 1000
console.log(
  JSON.stringify(
    {
      rows: ROWS,
      fileMB: +(size / 1_048_576).toFixed(1),
      status: answer.status,
      runStatus: run?.status,
      location: answer.location,
      uploadSeconds: +((uploadedAt - started) / 1000).toFixed(1),
      answeredSeconds: +answeredSeconds.toFixed(1),
      totalSeconds: +seconds.toFixed(1),
      rowsPerSecond: Math.round(ROWS / seconds),
      created: Number(run?.created ?? 0),
      rejected: Number(run?.rejected ?? 0),
      peakRssGrowthAtAnswerMB: +((peakAtAnswer - baseRss) / 1_048_576).toFixed(1),
      peakRssGrowthMB: +((peak - baseRss) / 1_048_576).toFixed(1),
      database: app.config.database.kind,
    },
    null,
    2,
  ),
)
for (const fn of teardowns.reverse()) await fn()
process.exit(answer.status === 303 && Number(run?.created) === ROWS ? 0 : 1)
