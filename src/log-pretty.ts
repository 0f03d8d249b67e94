// Readable logs for development: pino's JSON lines turned into one short line each
// ("10:04:07 INFO  GET /admin 200 12 ms"), fields after the message as key=value. Production keeps
// JSON (LOG_FORMAT, README "Configuration"). Redaction happens in pino before a line gets here.
import { Writable } from 'node:stream'
import type { Config } from './config.js'

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' }
const COLORS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' }
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId', 'v'])

/** Pretty when asked, or by default in development on a terminal; JSON otherwise. */
export function usePrettyLogs(config: Pick<Config, 'logFormat' | 'nodeEnv'>, isTty = Boolean(process.stdout.isTTY)) {
  if (config.logFormat !== 'auto') return config.logFormat === 'pretty'
  return config.nodeEnv === 'development' && isTty
}

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v
  return JSON.stringify(v)
}

/** Fastify's "incoming request" lines, kept by reqId until their "request completed" line. */
type Pending = Map<string, { method: string; url: string }>

const QUIET = /^\/(assets\/|favicon\.ico)/

/**
 * One line for one pino JSON record, or null for none; a line that is not JSON passes through.
 * Fastify logs each request twice: the first is held back, the second printed as
 * "GET /admin 200 12 ms", and static assets print nothing.
 */
export function prettyLine(line: string, color = false, pending: Pending = new Map()): string | null {
  let rec: Record<string, unknown>
  try {
    rec = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
  }
  const reqId = String(rec.reqId ?? '')
  const req = rec.req as { method?: string; url?: string } | undefined
  if (rec.msg === 'incoming request' && req?.method) {
    pending.set(reqId, { method: req.method, url: String(req.url ?? '') })
    return null
  }
  if (rec.msg === 'request completed') {
    const started = pending.get(reqId)
    pending.delete(reqId)
    if (!started || QUIET.test(started.url)) return null
    const status = (rec.res as { statusCode?: number } | undefined)?.statusCode
    rec = {
      level: rec.level,
      time: rec.time,
      msg: 'request',
      method: started.method,
      url: started.url,
      status,
      ms: Math.round(Number(rec.responseTime ?? 0)),
    }
  }
  const level = Number(rec.level)
  const time = new Date(Number(rec.time) || Date.now()).toTimeString().slice(0, 8)
  let msg = String(rec.msg ?? '')
  const fields = { ...rec }
  // The request line (app.ts): "GET /admin 200 12 ms".
  if (msg === 'request' && typeof rec.method === 'string') {
    msg = `${rec.method} ${rec.url} ${rec.status} ${rec.ms} ms`
    for (const k of ['method', 'url', 'status', 'ms']) delete fields[k]
  }
  const err = fields.err as { message?: string; stack?: string } | undefined
  delete fields.err
  const rest = Object.entries(fields)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ')
  const label = LEVELS[level] ?? String(level)
  const painted = color && COLORS[level] ? `${COLORS[level]}${label}\x1b[0m` : label
  return `${time} ${painted} ${msg}${rest ? `  ${rest}` : ''}${err?.stack ? `\n${err.stack}` : ''}`
}

export function prettyStream(out: NodeJS.WritableStream = process.stdout): Writable {
  const color = Boolean((out as { isTTY?: boolean }).isTTY)
  const requests: Pending = new Map()
  let partial = ''
  return new Writable({
    write(chunk, _enc, done) {
      partial += String(chunk)
      const lines = partial.split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        const text = line ? prettyLine(line, color, requests) : null
        if (text !== null) out.write(`${text}\n`)
      }
      done()
    },
  })
}
