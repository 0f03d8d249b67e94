// Features of the integration and the Carta scopes each needs (DESIGN §2 "Feature"). A route
// declares its feature with requireFeature(key); users lacking a scope get the gate page.

export interface Feature {
  key: string
  title: string
  /** Every scope the feature's Carta calls need. */
  scopes: string[]
  description: string
  /** Where the feature lives (reauthorizing returns here when no page is given). */
  path: string
}

export const FEATURES: readonly Feature[] = [
  {
    key: 'issuers',
    title: 'Your companies',
    scopes: ['read_issuer_info'],
    description: 'The list of companies (issuers) you can see on Carta.',
    path: '/features/issuers',
  },
  {
    key: 'cap-table',
    title: 'Cap table summary',
    scopes: ['read_issuer_info', 'read_issuer_capitalizationtablesummary'],
    description: "A summary of a company's cap table: share classes with outstanding and fully diluted counts.",
    path: '/features/issuers',
  },
]

export function findFeature(key: string): Feature | undefined {
  return FEATURES.find((f) => f.key === key)
}

// Plain words for the permissions a person is asked for (what Carta's consent screen says).
const SCOPE_WORDS: Record<string, string> = {
  read_user_info: 'See your name and email address on Carta.',
  read_issuer_info: 'See the list of companies you have access to on Carta.',
  read_issuer_capitalizationtablesummary: "See a summary of each company's cap table: share classes and share counts.",
  read_issuer_securities: 'See the securities issued by your companies.',
  read_issuer_stakeholders: 'See the stakeholders of your companies.',
  read_investor_investments: 'See your investments.',
}

/** A scope in plain words; Carta scope names follow read_<area> / readwrite_<area>. */
export function describeScope(scope: string): string {
  const known = SCOPE_WORDS[scope]
  if (known) return known
  const m = /^(read|readwrite)_(.+)$/.exec(scope)
  if (m) return `${m[1] === 'read' ? 'See' : 'See and change'} your ${m[2]!.replace(/_/g, ' ')} data on Carta.`
  return `The Carta permission "${scope}".`
}
