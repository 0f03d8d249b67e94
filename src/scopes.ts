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

// Plain words for Carta scope names: what a person is asked to allow. The one table every page
// uses (the feature gate, a link's page, errors, the sandbox's consent page). Scope names follow
// read_<area> / readwrite_<area> (Carta's developer docs); an unknown one is described from that.
const SCOPE_WORDS: Record<string, string> = {
  read_user_info: 'See your name and email address on Carta.',
  read_issuer_info: 'See the list of companies you have access to on Carta.',
  read_issuer_capitalizationtablesummary: "See a summary of each company's cap table: share classes and share counts.",
  read_issuer_securities: 'See the securities issued by your companies.',
  read_issuer_stakeholders: 'See the stakeholders of your companies.',
  read_issuer_valuations: "See each company's valuations.",
  read_investor_firms: 'See the investment firms you have access to.',
  read_investor_funds: "See your firms' funds.",
  read_investor_investments: 'See your investments.',
  read_portfolio_info: 'See your portfolio of holdings.',
}

/** A scope in plain words. */
export function describeScope(scope: string): string {
  const known = SCOPE_WORDS[scope]
  if (known) return known
  const m = /^(read|readwrite)_(.+)$/.exec(scope)
  if (m) return `${m[1] === 'read' ? 'See' : 'See and change'} your ${m[2]!.replace(/_/g, ' ')} data on Carta.`
  return `The Carta permission "${scope}".`
}

/** Scopes with their plain words, for lists on pages. */
export function describeScopes(scopes: string[]): Array<{ scope: string; description: string }> {
  return scopes.map((scope) => ({ scope, description: describeScope(scope) }))
}
