// Logs as a developer reads them: `npm run dev`-style start with LOG_FORMAT=pretty prints one line
// per request and nothing for static assets; without it (not a terminal) the lines stay JSON.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot } from '../src/config.js'
import { prettyLine, usePrettyLogs } from '../src/log-pretty.js'
import { freePort } from './helpers/app.js'

async function startServer(
  t: { teardown(fn: () => unknown): void },
  env: Record<string, string>,
): Promise<{ url: string; out: () => string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'scope-ledger-log-'))
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/server.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATA_DIR: dataDir,
      ...env,
    },
  })
  let out = ''
  child.stdout!.on('data', (c) => (out += c))
  child.stderr!.resume()
  t.teardown(async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
    rmSync(dataDir, { recursive: true, force: true })
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 900; i++) {
    if (
      await fetch(`${url}/healthz`).then(
        () => true,
        () => false,
      )
    )
      break
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, out: () => out }
}

const settle = () => new Promise((r) => setTimeout(r, 300))

t.test('pretty: one line per request, assets quiet', async (t) => {
  const server = await startServer(t, { LOG_FORMAT: 'pretty' })
  await (await fetch(`${server.url}/`)).text()
  await (await fetch(`${server.url}/assets/style.css`)).text()
  await (await fetch(`${server.url}/admin`, { redirect: 'manual' })).text()
  await settle()
  const lines = server.out().split('\n').filter(Boolean)
  t.notOk(
    lines.some((l) => l.startsWith('{')),
    'no JSON lines',
  )
  t.equal(lines.filter((l) => / GET \/ 200 \d+ ms$/.test(l)).length, 1, 'one line for the home page')
  t.ok(
    lines.some((l) => / GET \/admin 303 \d+ ms$/.test(l)),
    'and one for the redirect',
  )
  t.notOk(
    lines.some((l) => l.includes('/assets/')),
    'static assets are quiet',
  )
  t.notOk(
    lines.some((l) => /incoming request|request completed/.test(l)),
    "not Fastify's two lines per request",
  )
})

t.test('not a terminal and not asked: JSON lines, as in production', async (t) => {
  const server = await startServer(t, {})
  await (await fetch(`${server.url}/`)).text()
  await settle()
  const lines = server.out().split('\n').filter(Boolean)
  // (The first operator's password is printed once in a framed block, apart from the log.)
  const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string })
  t.ok(
    json.some((l) => l.msg === 'request completed'),
    'request lines are JSON',
  )
  t.notOk(
    lines.some((l) => / GET \/ 200 \d+ ms$/.test(l)),
    'no pretty lines',
  )
})

t.test('the formatter and the default', async (t) => {
  t.equal(usePrettyLogs({ logFormat: 'auto', nodeEnv: 'development' }, true), true)
  t.equal(usePrettyLogs({ logFormat: 'auto', nodeEnv: 'development' }, false), false)
  t.equal(usePrettyLogs({ logFormat: 'auto', nodeEnv: 'production' }, true), false, 'production stays JSON')
  t.equal(usePrettyLogs({ logFormat: 'json', nodeEnv: 'development' }, true), false)
  t.match(
    prettyLine(JSON.stringify({ level: 40, time: 0, msg: 'rollout form rejected', field: 'name', reqId: 'r1' })),
    /^\d\d:\d\d:\d\d WARN {2}rollout form rejected {2}field=name$/,
  )
  t.equal(prettyLine('not json'), 'not json')
})
