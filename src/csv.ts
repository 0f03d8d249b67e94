// The one CSV encoder (RFC 4180): every export (audit trail, reauthorization links, coverage
// reports) writes its lines through csvLine.

/**
 * One field: quoted when it holds a comma, quote, CR or LF (quotes doubled). Text a spreadsheet
 * would run as a formula (= + - @ tab CR first) gets a leading apostrophe (OWASP "CSV injection");
 * numbers are written as they are. null and undefined are empty fields.
 */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return ''
  let text = String(value)
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** One record, CRLF-terminated. */
export function csvLine(fields: ReadonlyArray<string | number | null | undefined>): string {
  return `${fields.map(csvField).join(',')}\r\n`
}
