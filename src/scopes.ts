// Scopes are an unordered set of case-sensitive tokens (RFC 6749 §3.3): parse, compare and store
// them as sets, never as strings.

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/** Split a space-delimited scope string into a sorted, de-duplicated list. */
export function parseScopes(value: string | null | undefined): string[] {
  if (!value) return []
  return [...new Set(value.split(/\s+/).filter(Boolean))].sort()
}

/** True when every part is a valid scope-token per RFC 6749 §3.3. */
export function isValidScopeToken(scope: string): boolean {
  return SCOPE_TOKEN.test(scope)
}

/** Canonical storage form: sorted, single-space separated. */
export function formatScopes(scopes: Iterable<string>): string {
  return [...new Set(scopes)].sort().join(' ')
}

/** Scopes in `required` that `held` lacks, sorted. */
export function missingScopes(required: Iterable<string>, held: Iterable<string>): string[] {
  const have = new Set(held)
  return [...new Set(required)].filter((s) => !have.has(s)).sort()
}

export function sameScopes(a: Iterable<string>, b: Iterable<string>): boolean {
  const left = new Set(a)
  const right = new Set(b)
  return left.size === right.size && [...left].every((s) => right.has(s))
}
