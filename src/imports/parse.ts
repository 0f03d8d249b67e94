// Reading an import file (src/README.md, "Imports"): JSON Lines (https://jsonlines.org) or CSV with
// a header row (RFC 4180), streamed line by line with bounded memory. Every line becomes either a
// normalized row or a rejection with its line number and a reason; a rejection never carries a
// token (reasons name the field, never echo its value).
import { createHash } from 'node:crypto'
import { isValidScopeToken, parseScopes } from '../scopes.js'

export type ImportFormat = 'jsonl' | 'csv'

export const IMPORT_FIELDS = [
  'carta_user_id',
  'client_id',
  'email',
  'name',
  'scopes',
  'granted_at',
  'access_token',
  'refresh_token',
  'access_expires_at',
] as const
type Field = (typeof IMPORT_FIELDS)[number]

/** A longer line is refused (and skipped to its end) instead of being held in memory. */
export const MAX_LINE_BYTES = 64 * 1024

export interface ImportRow {
  line: number
  cartaUserId: string
  clientId: string
  email: string | null
  name: string | null
  /** null: the file did not say (scope source unknown). */
  scopes: string[] | null
  grantedAt: number | null
  accessToken: string | null
  refreshToken: string | null
  accessExpiresAt: number | null
}

export interface Rejection {
  line: number
  reason: string
  /** Identity for the rejects file when the line was readable enough to have one. */
  cartaUserId?: string
  clientId?: string
}

export type Parsed = { row: ImportRow } | { rejection: Rejection } | { skip: true }

/** The file cannot be imported at all (exit status 2): e.g. a CSV header without client_id. */
export class ImportFileError extends Error {}

export interface RawLine {
  line: number
  /** null when the bytes were not UTF-8 or the line was too long (`problem` says which). */
  text: string | null
  problem?: string
}

/**
 * Splits a byte stream into lines: LF or CRLF endings, a UTF-8 byte order mark at the start
 * dropped, invalid UTF-8 and overlong lines reported per line. `onBytes` reports progress.
 */
export async function* readLines(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  onBytes: (n: number) => void = () => {},
): AsyncGenerator<RawLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })
  let parts: Buffer[] = []
  let size = 0
  let overlong = false
  let line = 0
  let first = true
  const finish = (bytes: Buffer): RawLine => {
    line += 1
    if (overlong) {
      overlong = false
      return { line, text: null, problem: `the line is longer than ${MAX_LINE_BYTES} bytes` }
    }
    let end = bytes.length
    if (end > 0 && bytes[end - 1] === 0x0d) end -= 1
    let start = 0
    // A UTF-8 byte order mark is allowed at the very start of the file only.
    if (first && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3
    first = false
    try {
      return { line, text: decoder.decode(bytes.subarray(start, end)) }
    } catch {
      return { line, text: null, problem: 'the line is not valid UTF-8' }
    }
  }
  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk
    onBytes(buf.length)
    let from = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, from)
      const piece = buf.subarray(from, nl === -1 ? buf.length : nl)
      if (!overlong) {
        if (size + piece.length > MAX_LINE_BYTES + 1) {
          overlong = true
          parts = []
          size = 0
        } else if (piece.length) {
          parts.push(piece)
          size += piece.length
        }
      }
      if (nl === -1) break
      const whole = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)
      parts = []
      size = 0
      yield finish(whole)
      from = nl + 1
    }
    // Keep our own copy of a partial line: the stream may reuse its chunk.
    if (parts.length && parts.at(-1)!.buffer === buf.buffer) parts[parts.length - 1] = Buffer.from(parts.at(-1)!)
  }
  if (size > 0 || overlong) yield finish(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size))
}

/** Splits one CSV record (RFC 4180 §2): quoted fields may hold commas and doubled quotes. */
export function splitCsvLine(text: string): string[] | string {
  const fields: string[] = []
  let i = 0
  for (;;) {
    if (text[i] === '"') {
      let value = ''
      i += 1
      for (;;) {
        const q = text.indexOf('"', i)
        if (q === -1) return 'a quoted field is not closed on its line'
        value += text.slice(i, q)
        if (text[q + 1] === '"') {
          value += '"'
          i = q + 2
          continue
        }
        i = q + 1
        break
      }
      fields.push(value)
      if (i === text.length) return fields
      if (text[i] !== ',') return 'a quoted field is followed by text before the next comma'
      i += 1
    } else {
      const comma = text.indexOf(',', i)
      const value = text.slice(i, comma === -1 ? text.length : comma)
      if (value.includes('"')) return 'a field that holds a double quote must be quoted (RFC 4180)'
      fields.push(value)
      if (comma === -1) return fields
      i = comma + 1
    }
  }
}

/** The CSV header: which column holds which field. */
export function csvColumns(text: string): Field[] {
  const names = splitCsvLine(text)
  if (typeof names === 'string') throw new ImportFileError(`The CSV header cannot be read: ${names}.`)
  const columns = names.map((n) => n.trim())
  for (const name of columns) {
    if (!(IMPORT_FIELDS as readonly string[]).includes(name))
      throw new ImportFileError(
        `The CSV header has an unknown column "${name.slice(0, 60)}"; the columns are: ${IMPORT_FIELDS.join(', ')}.`,
      )
  }
  const dup = columns.find((c, i) => columns.indexOf(c) !== i)
  if (dup) throw new ImportFileError(`The CSV header names the column "${dup}" twice.`)
  for (const required of ['carta_user_id', 'client_id'])
    if (!columns.includes(required)) throw new ImportFileError(`The CSV header has no "${required}" column.`)
  return columns as Field[]
}

// No control characters (what a single-line value should not hold, and NUL PostgreSQL cannot).
const CONTROL = { test: hasAsciiControl }
function hasAsciiControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}
// Tokens are visible ASCII (RFC 6750 §2.1 b64token; RFC 6749 Appendix A VSCHAR).
const TOKEN = /^[\x20-\x7e]+$/
// ISO 8601 / RFC 3339 §5.6 date-time with an explicit offset: a time without one is ambiguous.
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$/

/** Epoch ms of an ISO 8601 date-time, or null when it is not one (a 30 February included). */
export function parseDateTime(value: string): number | null {
  const m = DATE_TIME.exec(value)
  if (!m) return null
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number) as number[]
  const days = new Date(Date.UTC(year!, month!, 0)).getUTCDate()
  if (month! < 1 || month! > 12 || day! < 1 || day! > days || hour! > 23 || minute! > 59 || second! > 59) return null
  const ms = Date.parse(value.replace(' ', 'T'))
  return Number.isNaN(ms) ? null : ms
}

type Value = string | string[] | null

export interface RowRules {
  /** Scopes each client id's app holds (apps file); a client id not here is refused. */
  apps: Map<string, { scopes: Set<string> }>
  now: number
}

const LIMITS: Record<Field, number> = {
  carta_user_id: 200,
  client_id: 200,
  email: 320,
  name: 200,
  scopes: 4000,
  granted_at: 40,
  access_token: 8192,
  refresh_token: 8192,
  access_expires_at: 40,
}

/** Validates one record's fields into a row, or says why it is refused. */
export function toRow(line: number, values: Partial<Record<Field, Value>>, rules: RowRules): Parsed {
  const text = (field: Field): string | null | Rejection => {
    const v = values[field]
    if (v === null || v === undefined || v === '') return null
    if (typeof v !== 'string') return { line, reason: `${field} must be a string` }
    if (v.length > LIMITS[field]) return { line, reason: `${field} is longer than ${LIMITS[field]} characters` }
    if (CONTROL.test(v)) return { line, reason: `${field} holds a control character` }
    return v
  }
  const fields: Partial<Record<Field, string | null>> = {}
  for (const field of IMPORT_FIELDS) {
    if (field === 'scopes') continue
    const v = text(field)
    if (v !== null && typeof v === 'object') return { rejection: withIdentity(v, values) }
    fields[field] = v
  }
  const reject = (reason: string): Parsed => ({ rejection: withIdentity({ line, reason }, values) })
  const cartaUserId = fields.carta_user_id?.trim()
  if (!cartaUserId) return reject('carta_user_id is missing')
  const clientId = fields.client_id?.trim()
  if (!clientId) return reject('client_id is missing')
  const app = rules.apps.get(clientId)
  if (!app) return reject('client_id is not the client id of an app in the apps file')

  let scopes: string[] | null = null
  const rawScopes = values.scopes
  if (Array.isArray(rawScopes)) {
    if (rawScopes.some((s) => typeof s !== 'string')) return reject('scopes must be a string or an array of strings')
    scopes = parseScopes(rawScopes.join(' '))
  } else if (typeof rawScopes === 'string') {
    if (rawScopes.length > LIMITS.scopes) return reject(`scopes is longer than ${LIMITS.scopes} characters`)
    scopes = parseScopes(rawScopes)
  } else if (rawScopes !== null && rawScopes !== undefined) {
    return reject('scopes must be a string or an array of strings')
  }
  if (scopes !== null && scopes.length === 0) scopes = null
  for (const scope of scopes ?? []) {
    if (!isValidScopeToken(scope)) return reject('scopes holds a value that is not a scope name (RFC 6749 §3.3)')
    if (!app.scopes.has(scope)) return reject(`scope ${scope} is not one of the scopes of the app with this client_id`)
  }

  const date = (field: 'granted_at' | 'access_expires_at'): number | null | Parsed => {
    const v = fields[field]
    if (!v) return null
    const ms = parseDateTime(v.trim())
    if (ms === null) return reject(`${field} is not an ISO 8601 date-time with a time zone (e.g. 2025-03-01T10:00:00Z)`)
    return ms
  }
  const grantedAt = date('granted_at')
  if (grantedAt !== null && typeof grantedAt === 'object') return grantedAt
  // A few minutes of clock skew between the integrator's machine and ours are tolerated.
  if (grantedAt !== null && grantedAt > rules.now + 5 * 60_000) return reject('granted_at is in the future')
  const expires = date('access_expires_at')
  if (expires !== null && typeof expires === 'object') return expires
  for (const field of ['access_token', 'refresh_token'] as const) {
    const v = fields[field]
    if (v && !TOKEN.test(v)) return reject(`${field} holds characters a token cannot hold`)
  }
  return {
    row: {
      line,
      cartaUserId,
      clientId,
      email: fields.email?.trim() || null,
      name: fields.name?.trim() || null,
      scopes,
      grantedAt,
      accessToken: fields.access_token ?? null,
      refreshToken: fields.refresh_token ?? null,
      accessExpiresAt: expires,
    },
  }
}

function withIdentity(rejection: Rejection, values: Partial<Record<Field, Value>>): Rejection {
  const id = (v: Value | undefined) =>
    typeof v === 'string' && v.length <= 200 && !CONTROL.test(v) && v.trim() ? v.trim() : undefined
  const cartaUserId = id(values.carta_user_id)
  const clientId = id(values.client_id)
  return { ...rejection, ...(cartaUserId ? { cartaUserId } : {}), ...(clientId ? { clientId } : {}) }
}

/** One JSON Lines record. */
export function parseJsonLine(line: number, text: string, rules: RowRules): Parsed {
  if (text.trim() === '') return { skip: true }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { rejection: { line, reason: 'the line is not valid JSON' } }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { rejection: { line, reason: 'the line is not a JSON object' } }
  const record = value as Record<string, unknown>
  const values: Partial<Record<Field, Value>> = {}
  for (const [key, v] of Object.entries(record)) {
    if (!(IMPORT_FIELDS as readonly string[]).includes(key))
      return {
        rejection: withIdentity(
          { line, reason: `unknown field "${hasAsciiControl(key) ? '(with control characters)' : key.slice(0, 60)}"` },
          record as Record<Field, Value>,
        ),
      }
    // Carta user ids may arrive as JSON numbers; they are compared as strings.
    if (key === 'carta_user_id' && typeof v === 'number' && Number.isSafeInteger(v)) values[key] = String(v)
    else values[key as Field] = v as Value
  }
  return toRow(line, values, rules)
}

/** One CSV record, given the header's columns. */
export function parseCsvLine(line: number, text: string, columns: Field[], rules: RowRules): Parsed {
  if (text.trim() === '') return { skip: true }
  const fields = splitCsvLine(text)
  if (typeof fields === 'string') return { rejection: { line, reason: `the line is not valid CSV: ${fields}` } }
  const values: Partial<Record<Field, Value>> = {}
  columns.forEach((c, i) => {
    values[c] = fields[i] ?? null
  })
  if (fields.length !== columns.length)
    return {
      rejection: withIdentity(
        { line, reason: `the line has ${fields.length} fields; the header has ${columns.length}` },
        values,
      ),
    }
  return toRow(line, values, rules)
}

/**
 * What identifies an import row's grant: SHA-256 over the client id, user, scopes, grant time and
 * tokens (high-entropy values: the digest reveals nothing of them). Identity fields (email, name)
 * are left out: they describe the person, not the grant.
 */
export function rowFingerprint(row: ImportRow): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        row.clientId,
        row.cartaUserId,
        row.scopes,
        row.grantedAt,
        row.accessToken,
        row.refreshToken,
        row.accessExpiresAt,
      ]),
    )
    .digest('base64url')
}

/** The format a file name implies, if any. */
export function formatFromName(name: string): ImportFormat | null {
  const lower = name.toLowerCase()
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || lower.endsWith('.json')) return 'jsonl'
  if (lower.endsWith('.csv')) return 'csv'
  return null
}
