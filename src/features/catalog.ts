// Features of the integration and the Carta scopes each needs (src/README.md, "Data model"). A route
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
