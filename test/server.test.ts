// The real entry point: `tsx src/server.ts` starts on defaults, and refuses bad configuration
// with a message naming the variable (exit code 1, no stack trace).
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { freePort } from './helpers/app.js'

function run(env: Record<string, string>, untilOutput?: RegExp): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    const onData = (chunk: Buffer) => {
      output += chunk
      if (untilOutput?.test(output)) child.kill('SIGTERM')
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

t.test('a bad setting stops start-up with a clear message', async (t) => {
  const { code, output } = await run({ PORT: 'nope', DATA_DIR: mkdtempSync(join(tmpdir(), 'sl-srv-')) })
  t.equal(code, 1)
  t.match(output, /Scope Ledger cannot start: Invalid configuration: PORT must be a whole number/)
  t.notMatch(output, /\n\s+at /, 'no stack trace')
})

t.test('an unreachable database stops start-up without leaking the password', async (t) => {
  const { code, output } = await run({
    DATABASE_URL: 'postgres://ledger:hunter2@127.0.0.1:1/none',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'sl-srv-')),
  })
  t.equal(code, 1)
  t.match(output, /Cannot open the postgres database/)
  t.notMatch(output, /hunter2/)
})

t.test('starts on embedded defaults and serves pages', async (t) => {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'sl-srv-'))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (c) => (output += c))
  child.stderr.on('data', (c) => (output += c))
  const deadline = Date.now() + 60_000
  while (!/Scope Ledger is running/.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.match(output, /Using generated secrets for local use only/, 'says the generated key is for local use')
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  t.equal(health.status, 200)
  const css = await fetch(`http://127.0.0.1:${port}/assets/style.css`)
  t.match(css.headers.get('content-type') ?? '', /text\/css/)
  const missing = await fetch(`http://127.0.0.1:${port}/no-such-page`)
  t.equal(missing.status, 404)
  t.match(await missing.text(), /Page not found/)
  const exited = new Promise<number | null>((r) => child.on('close', r))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM shuts down cleanly')
})
