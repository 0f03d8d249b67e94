// Reading Carta's cap table summary liberally: field names differ between API versions, so
// accept the common spellings and show what is there rather than fail on a renamed field.

export interface CapTableRow {
  name: string
  outstanding: number | null
  fullyDiluted: number | null
}

export interface CapTable {
  issuerName: string | null
  rows: CapTableRow[]
  totalOutstanding: number | null
  totalFullyDiluted: number | null
}

const num = (...values: unknown[]): number | null => {
  for (const v of values) {
    if (typeof v === 'number' && Number.isFinite(v)) return v
    if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim())) return Number(v)
  }
  return null
}

const text = (...values: unknown[]): string | null => {
  for (const v of values) if (typeof v === 'string' && v.trim()) return v.trim()
  return null
}

/** Returns null when the answer holds no list of classes at all (treated as malformed). */
export function parseCapTable(body: Record<string, unknown>): CapTable | null {
  const inner = (typeof body.summary === 'object' && body.summary !== null ? body.summary : body) as Record<
    string,
    unknown
  >
  const list = [
    inner.shareClasses,
    inner.share_classes,
    inner.classes,
    inner.securities,
    inner.results,
    inner.data,
  ].find(Array.isArray) as unknown[] | undefined
  if (!list) return null
  const rows: CapTableRow[] = []
  for (const item of list) {
    if (typeof item !== 'object' || item === null) continue
    const r = item as Record<string, unknown>
    rows.push({
      name: text(r.name, r.className, r.class_name, r.label, r.title) ?? 'Unnamed class',
      outstanding: num(r.outstanding, r.outstandingShares, r.outstanding_shares, r.issued, r.issuedShares),
      fullyDiluted: num(r.fullyDiluted, r.fully_diluted, r.fullyDilutedShares, r.fully_diluted_shares),
    })
  }
  const sum = (key: 'outstanding' | 'fullyDiluted'): number | null =>
    rows.some((r) => r[key] !== null) ? rows.reduce((t, r) => t + (r[key] ?? 0), 0) : null
  const issuer = (typeof inner.issuer === 'object' && inner.issuer !== null ? inner.issuer : {}) as Record<
    string,
    unknown
  >
  return {
    issuerName: text(
      inner.legalName,
      inner.legal_name,
      inner.issuerName,
      inner.issuer_name,
      issuer.legalName,
      issuer.legal_name,
      issuer.name,
    ),
    rows,
    totalOutstanding: num(inner.totalOutstanding, inner.total_outstanding) ?? sum('outstanding'),
    totalFullyDiluted: num(inner.totalFullyDiluted, inner.total_fully_diluted) ?? sum('fullyDiluted'),
  }
}
