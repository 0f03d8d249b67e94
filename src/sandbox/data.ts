// Demo data of the sandbox Carta: users, the companies (issuers) they can see, cap-table
// summaries, and plain-words descriptions of the scopes. Ids are stable so tests, the README and
// a person clicking through the demo can name them.

export interface DemoUser {
  id: string
  email: string
  firstName: string
  lastName: string
  role: string
  issuerIds: string[]
}

export interface ShareClass {
  name: string
  outstanding: number
  fullyDiluted: number
}

export interface DemoIssuer {
  id: string
  legalName: string
  dbaName: string
  shareClasses: ShareClass[]
}

export const demoIssuers: DemoIssuer[] = [
  {
    id: 'iss_lumen',
    legalName: 'Lumen Robotics, Inc.',
    dbaName: 'Lumen',
    shareClasses: [
      { name: 'Common', outstanding: 6_000_000, fullyDiluted: 6_000_000 },
      { name: 'Series Seed Preferred', outstanding: 1_850_000, fullyDiluted: 1_850_000 },
      { name: 'Series A Preferred', outstanding: 2_400_000, fullyDiluted: 2_400_000 },
      { name: 'Options (2021 Plan)', outstanding: 0, fullyDiluted: 1_250_000 },
    ],
  },
  {
    id: 'iss_harbor',
    legalName: 'Harbor Analytics Corp.',
    dbaName: 'Harbor',
    shareClasses: [
      { name: 'Common', outstanding: 8_500_000, fullyDiluted: 8_500_000 },
      { name: 'Series A Preferred', outstanding: 3_100_000, fullyDiluted: 3_100_000 },
      { name: 'Options (2019 Plan)', outstanding: 0, fullyDiluted: 1_900_000 },
      { name: 'Warrants', outstanding: 0, fullyDiluted: 150_000 },
    ],
  },
  {
    id: 'iss_quill',
    legalName: 'Quill & Ledger Software LLC',
    dbaName: 'Quill',
    shareClasses: [
      { name: 'Common Units', outstanding: 1_000_000, fullyDiluted: 1_000_000 },
      { name: 'Profits Interests', outstanding: 0, fullyDiluted: 120_000 },
    ],
  },
  {
    id: 'iss_northwind',
    legalName: 'Northwind Bio Therapeutics, Inc.',
    dbaName: 'Northwind Bio',
    shareClasses: [
      { name: 'Common', outstanding: 12_000_000, fullyDiluted: 12_000_000 },
      { name: 'Series A Preferred', outstanding: 4_500_000, fullyDiluted: 4_500_000 },
      { name: 'Series B Preferred', outstanding: 3_750_000, fullyDiluted: 3_750_000 },
      { name: 'Options (2020 Plan)', outstanding: 0, fullyDiluted: 2_600_000 },
    ],
  },
  {
    id: 'iss_tidepool',
    legalName: 'Tidepool Energy, Inc.',
    dbaName: 'Tidepool',
    shareClasses: [
      { name: 'Common', outstanding: 5_200_000, fullyDiluted: 5_200_000 },
      { name: 'Convertible Notes (as-converted)', outstanding: 0, fullyDiluted: 640_000 },
      { name: 'Options (2023 Plan)', outstanding: 0, fullyDiluted: 780_000 },
    ],
  },
]

export const demoUsers: DemoUser[] = [
  {
    id: 'cu_1001',
    email: 'ada.okafor@lumen.example',
    firstName: 'Ada',
    lastName: 'Okafor',
    role: 'Founder & CEO',
    issuerIds: ['iss_lumen'],
  },
  {
    id: 'cu_1002',
    email: 'ben.hartley@harbor.example',
    firstName: 'Ben',
    lastName: 'Hartley',
    role: 'CFO',
    issuerIds: ['iss_harbor', 'iss_lumen'],
  },
  {
    id: 'cu_1003',
    email: 'chen.wei@quill.example',
    firstName: 'Chen',
    lastName: 'Wei',
    role: 'Managing member',
    issuerIds: ['iss_quill'],
  },
  {
    id: 'cu_1004',
    email: 'dana.ruiz@northwind.example',
    firstName: 'Dana',
    lastName: 'Ruiz',
    role: 'General counsel',
    issuerIds: ['iss_northwind', 'iss_tidepool', 'iss_harbor'],
  },
  {
    id: 'cu_1005',
    email: 'eli.novak@tidepool.example',
    firstName: 'Eli',
    lastName: 'Novak',
    role: 'Head of finance',
    issuerIds: ['iss_tidepool'],
  },
  {
    id: 'cu_1006',
    email: 'farah.haddad@angel.example',
    firstName: 'Farah',
    lastName: 'Haddad',
    role: 'Board member',
    issuerIds: ['iss_lumen', 'iss_northwind'],
  },
]

export function findDemoUser(id: string): DemoUser | undefined {
  return demoUsers.find((u) => u.id === id)
}

export function findDemoIssuer(id: string): DemoIssuer | undefined {
  return demoIssuers.find((i) => i.id === id)
}

/** What a person is agreeing to, in plain words (shown on the consent page). */
const scopeDescriptions: Record<string, string> = {
  read_user_info: 'See your name and email address.',
  read_issuer_info: 'See the list of companies you have access to on Carta.',
  read_issuer_capitalizationtablesummary: "See a summary of each company's cap table: share classes and share counts.",
  read_issuer_securities: 'See the securities issued by your companies.',
  read_issuer_stakeholders: 'See the stakeholders of your companies.',
  read_investor_investments: 'See your investments.',
}

export function describeScope(scope: string): string {
  const known = scopeDescriptions[scope]
  if (known) return known
  // Carta scope names are read_<area> / readwrite_<area>: say that much for unknown ones.
  const m = /^(read|readwrite)_(.+)$/.exec(scope)
  if (m) return `${m[1] === 'read' ? 'See' : 'See and change'} your ${m[2]!.replace(/_/g, ' ')} data.`
  return 'Access described by Carta as ' + scope + '.'
}
