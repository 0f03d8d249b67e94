// Slow and oversized requests (README, "Settings"): a body trickled byte by byte is cut once
// REQUEST_TIMEOUT_MS has passed (Node answers 408 and closes the connection), and a body over
// BODY_LIMIT_BYTES is refused with 413; the server keeps answering others.
import { connect } from 'node:net'
import t from 'tap'
import { startTestApp } from '../helpers/app.js'

/** Sends headers promising a body, then one byte every `everyMs`; resolves when the server closes. */
function trickle(url: string, everyMs: number, giveUpMs: number): Promise<{ closedAfterMs: number; response: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect({ host: hostname, port: Number(port) })
    let response = ''
    let timer: NodeJS.Timeout | undefined
    const giveUp = setTimeout(() => {
      clearInterval(timer)
      socket.destroy()
      reject(new Error(`still open after ${giveUpMs} ms`))
    }, giveUpMs)
    socket.on('connect', () => {
      socket.write(
        `POST /admin/sign-in HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n`,
      )
      timer = setInterval(() => socket.write('a'), everyMs)
    })
    socket.on('data', (chunk) => {
      response += chunk.toString('latin1')
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearInterval(timer)
      clearTimeout(giveUp)
      resolve({ closedAfterMs: Date.now() - started, response })
    })
  })
}

t.test('a trickling body is cut after REQUEST_TIMEOUT_MS', async (t) => {
  const app = await startTestApp(t, { env: { REQUEST_TIMEOUT_MS: '1500' } })
  const { closedAfterMs, response } = await trickle(app.url, 200, 10_000)
  t.ok(closedAfterMs >= 1_400 && closedAfterMs < 5_000, `closed after ${closedAfterMs} ms`)
  t.match(response, /^HTTP\/1\.1 408 /, 'Node answers 408 Request Timeout')
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'the server still answers')
})

t.test('a body over BODY_LIMIT_BYTES is refused with 413', async (t) => {
  const app = await startTestApp(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const res = await fetch(`${app.url}/admin/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `username=${'a'.repeat(4096)}`,
  })
  t.equal(res.status, 413)
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'the server still answers')
})
