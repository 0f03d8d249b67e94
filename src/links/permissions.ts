// Plain words for Carta scope names, for the page an end user sees before reauthorizing.
// Scope names follow read_<area> / readwrite_<area> (Carta developer docs); an unknown scope is
// shown by its raw name rather than guessed at.

const DESCRIPTIONS: Record<string, string> = {
  read_user_info: 'See your name and email address on Carta',
  read_issuer_info: 'See the companies you have access to on Carta',
  read_issuer_capitalizationtablesummary: "See the summary of each company's cap table",
  read_issuer_securities: 'See the securities each company has issued',
  read_issuer_stakeholders: "See each company's stakeholders",
  read_issuer_valuations: "See each company's valuations",
  read_investor_firms: 'See the investment firms you have access to',
  read_investor_funds: "See your firms' funds",
  read_investor_investments: "See your funds' investments",
  read_portfolio_info: 'See your portfolio of holdings',
}

export interface Permission {
  scope: string
  /** Plain-words description, or null when the scope is not one we know. */
  description: string | null
}

export function describeScopes(scopes: string[]): Permission[] {
  return scopes.map((scope) => ({ scope, description: DESCRIPTIONS[scope] ?? null }))
}
