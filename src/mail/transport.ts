// Where messages go: an SMTP server (SMTP_URL, nodemailer's pooled transport), or, with no
// SMTP_URL outside production, a local mailbox of files that /sandbox/mail shows (src/README.md,
// "Email"). The outbox worker (outbox.ts) is the only sender.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { type Socket, connect } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import nodemailer from 'nodemailer'
import { parseConnectionUrl } from 'nodemailer/lib/shared/index.js'
import type { MailConfig } from '../config.js'

export interface OutgoingMessage {
  to: string
  subject: string
  text: string
  html: string
  headers?: Record<string, string>
  attachments?: Array<{ filename: string; content: string; contentType: string }>
}

export interface Delivered {
  messageId: string
  /** The server's last reply ("250 OK …"), or "stored in the local mailbox". */
  response: string
}

export interface SendOptions {
  /**
   * Runs (and is awaited) after the whole message was written and just before its end of data (the
   * final "." line, RFC 5321 §4.1.1.4), with the message's Message-ID. Until then the server has
   * not taken the message, whatever happens to this process; from then on, until its reply, the
   * outcome is unknown. A failure aborts the transaction without its end of data.
   */
  beforeEndOfData?: (messageId: string) => Promise<void>
}

export interface Mailer {
  readonly kind: 'smtp' | 'mailbox'
  send(message: OutgoingMessage, options?: SendOptions): Promise<Delivered>
  close(): void
}

/** The message stream, read lazily (after the server's 354), with `hook` awaited before it ends. */
function beforeEnd(input: Readable, hook: () => Promise<void>): Readable {
  return Readable.from(
    (async function* () {
      for await (const chunk of input) yield chunk as Buffer
      await hook()
    })(),
    { objectMode: false },
  )
}

/** The mailer for the configured transport; null when email is off. */
export function createMailer(config: MailConfig, options: { maxConnections?: number } = {}): Mailer | null {
  const transport = config.transport
  const envelope = (m: OutgoingMessage) => ({
    from: config.from,
    ...(config.replyTo ? { replyTo: config.replyTo } : {}),
    to: m.to,
    subject: m.subject,
    text: m.text,
    html: m.html,
    headers: m.headers ?? {},
    attachments: m.attachments ?? [],
  })
  if (transport.kind === 'smtp') {
    // The URL is parsed here, not passed as `url`: given `url`, nodemailer builds the transport from
    // the URL alone and drops every other option (no pool, its default 10-minute socket timeout,
    // no SMTP_USER).
    const parsed = parseConnectionUrl(transport.url)
    const smtp = nodemailer.createTransport({
      ...parsed,
      pool: true,
      // smtps:// (TLS from the first byte) keeps nodemailer's own connection.
      ...(parsed.secure ? {} : { getSocket: noDelaySocket(parsed.host ?? 'localhost', Number(parsed.port) || 587) }),
      // A connection that closes mid-message is the outbox's to judge (outbox.ts): the pool must not
      // quietly send the message again on another connection (its default requeues without limit).
      maxRequeues: 0,
      maxConnections: options.maxConnections ?? 5,
      // A dead server must not hold a send for long: the row goes back to the queue with backoff.
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      greetingTimeout: 10_000,
      socketTimeout: 60_000,
      ...(transport.user ? { auth: { user: transport.user, pass: transport.password ?? '' } } : {}),
    } as Parameters<typeof nodemailer.createTransport>[0])
    // nodemailer pipes the message stream into DATA only after the server's 354 reply; the last
    // stream function wraps it, so the hook runs once the body is written, before the final dot.
    smtp.use('stream', (mail, done) => {
      const hook = (mail.data as { beforeEndOfData?: SendOptions['beforeEndOfData'] }).beforeEndOfData
      if (hook) {
        const messageId = mail.message.messageId()
        mail.message.processFunc((input) => beforeEnd(input, () => hook(messageId)))
      }
      done()
    })
    return {
      kind: 'smtp',
      async send(message, options = {}) {
        const info = await smtp.sendMail({
          ...envelope(message),
          ...(options.beforeEndOfData ? { beforeEndOfData: options.beforeEndOfData } : {}),
        } as Parameters<typeof smtp.sendMail>[0])
        return { messageId: String(info.messageId), response: String(info.response ?? '') }
      },
      close: () => smtp.close(),
    }
  }
  if (transport.kind === 'mailbox') {
    const stream = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
    return {
      kind: 'mailbox',
      async send(message, options = {}) {
        const info = await stream.sendMail(envelope(message))
        const messageId = String(info.messageId)
        await options.beforeEndOfData?.(messageId)
        const name = `${Date.now()}-${randomBytes(6).toString('hex')}`
        mkdirSync(transport.dir, { recursive: true })
        const meta: MailboxEntry = {
          name,
          messageId,
          from: config.from,
          to: message.to,
          subject: message.subject,
          date: new Date().toISOString(),
          text: message.text,
          html: message.html,
          headers: message.headers ?? {},
          attachments: (message.attachments ?? []).map((a) => a.filename),
        }
        // Written under a temporary name, then renamed: the mailbox never lists half a message.
        writeFileSync(join(transport.dir, `.${name}.eml`), info.message as Buffer)
        renameSync(join(transport.dir, `.${name}.eml`), join(transport.dir, `${name}.eml`))
        writeFileSync(join(transport.dir, `.${name}.json`), JSON.stringify(meta))
        renameSync(join(transport.dir, `.${name}.json`), join(transport.dir, `${name}.json`))
        return { messageId, response: 'stored in the local mailbox' }
      },
      close: () => {},
    }
  }
  return null
}

const CONNECTION_TIMEOUT_MS = 10_000

/**
 * A plain TCP connection with Nagle's algorithm off, for nodemailer's pool (`getSocket`; STARTTLS
 * upgrades it as usual). With Nagle on, the end of each message (the final "." line, RFC 5321
 * §4.1.1.4) waits for the server's delayed ACK of the body: about 40 ms per message per connection.
 */
function noDelaySocket(host: string, port: number) {
  return (_options: unknown, callback: (err: Error | null, socket?: { connection: Socket }) => void) => {
    const socket = connect({ host, port, noDelay: true })
    const timer = setTimeout(
      () => socket.destroy(new Error(`connection to ${host}:${port} timed out`)),
      CONNECTION_TIMEOUT_MS,
    )
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      callback(null, { connection: socket })
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      callback(err)
    })
  }
}

export interface MailboxEntry {
  name: string
  messageId: string
  from: string
  to: string
  subject: string
  date: string
  text: string
  html: string
  headers: Record<string, string>
  attachments: string[]
}

const ENTRY_NAME = /^\d{13}-[0-9a-f]{12}$/

/** The local mailbox, newest first (at most `limit`). */
export function readMailbox(dir: string, limit = 200): MailboxEntry[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  return names
    .filter((n) => n.endsWith('.json') && ENTRY_NAME.test(n.slice(0, -5)))
    .sort()
    .reverse()
    .slice(0, limit)
    .map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as MailboxEntry)
}

/** One message of the local mailbox, or null (an unknown or malformed name reads nothing). */
export function readMailboxEntry(dir: string, name: string): { entry: MailboxEntry; raw: string } | null {
  if (!ENTRY_NAME.test(name)) return null
  try {
    return {
      entry: JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as MailboxEntry,
      raw: readFileSync(join(dir, `${name}.eml`), 'utf8'),
    }
  } catch {
    return null
  }
}
