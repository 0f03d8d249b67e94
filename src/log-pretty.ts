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

/** One line for one pino JSON record; a line that is not JSON passes through unchanged. */
export function prettyLine(line: string, color = false): string {
  let rec: Record<string, unknown>
  try {
    rec = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
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
  let pending = ''
  return new Writable({
    write(chunk, _enc, done) {
      pending += String(chunk)
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) if (line) out.write(`${prettyLine(line, color)}\n`)
      done()
    },
  })
}
