// A real SMTP server on a loopback port (the smtp-server package) for the email tests: it keeps
// every accepted message raw, refuses recipients starting with "reject" with 550 at RCPT, and can
// be told to answer 451 to every MAIL FROM (a server that is down for now).
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

export interface Received {
  from: string
  to: string[]
  raw: string
}

export interface TestSmtp {
  url: string
  port: number
  received: Received[]
  /** When set, every MAIL FROM gets "451 4.3.0 try again later". */
  transientFailure: boolean
  close(): Promise<void>
}

export async function startSmtp(t: { teardown(fn: () => unknown): void }): Promise<TestSmtp> {
  const state: TestSmtp = {
    url: '',
    port: 0,
    received: [],
    transientFailure: false,
    close: async () => {},
  }
  const server = new SMTPServer({
    // Plain SMTP on loopback: no STARTTLS (its self-signed certificate would be refused), no AUTH.
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onMailFrom(_address, _session, callback) {
      if (state.transientFailure) {
        const err = new Error('4.3.0 try again later') as Error & { responseCode: number }
        err.responseCode = 451
        return callback(err)
      }
      callback()
    },
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('reject')) {
        const err = new Error('5.1.1 no such mailbox here') as Error & { responseCode: number }
        err.responseCode = 550
        return callback(err)
      }
      callback()
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        state.received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.port = (server.server.address() as AddressInfo).port
  state.url = `smtp://127.0.0.1:${state.port}`
  let closed = false
  state.close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve()
      closed = true
      server.close(() => resolve())
    })
  t.teardown(() => state.close())
  return state
}

/** A header's unfolded value in a raw message (RFC 5322 §2.2.3). */
export function header(raw: string, name: string): string | null {
  const head = raw.split(/\r?\n\r?\n/)[0] ?? ''
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ')
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
  return line ? line.slice(name.length + 1).trim() : null
}

/** The decoded body of the part with this content type (quoted-printable or 7bit, as nodemailer writes them). */
export function part(raw: string, contentType: string): string | null {
  const re = new RegExp(
    `Content-Type: ${contentType.replace('/', '\\/')}[^\\r\\n]*\\r?\\n((?:[^\\r\\n]+\\r?\\n)*)\\r?\\n([\\s\\S]*?)\\r?\\n--`,
    'i',
  )
  const m = re.exec(raw)
  if (!m) return null
  const headers = m[1] ?? ''
  let body = m[2] ?? ''
  if (/quoted-printable/i.test(headers))
    body = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_s, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
  else if (/base64/i.test(headers)) body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
  return Buffer.from(body, 'latin1').toString('utf8')
}
