// Demo data of the sandbox Carta: users, the companies (issuers) they can see with their cap
// tables (share classes, option pools, warrants, notes, as Carta models them), and plain-words
// descriptions of the scopes. Ids are stable so tests, the README and a person clicking through the
// demo can name them.

export interface DemoUser {
  id: string
  email: string
  firstName: string
  lastName: string
  role: string
  issuerIds: string[]
}

/** A share class (https://open-cap-table-coalition.github.io/Tevatron/domain/share_class/). */
export interface DemoShareClass {
  id: string
  name: string
  prefix: string
  type: 'COMMON' | 'PREFERRED'
  authorized: number
  outstanding: number
  /** Cash raised, in USD. */
  cashRaised: number
  seniority: number
}

export interface DemoOptionPool {
  id: string
  name: string
  shareClassId: string
  /** The plan size: Carta counts all of it as fully diluted. */
  authorized: number
  /** Granted, not yet exercised (outstandingEquityAwardDerivatives). */
  outstandingAwards: number
}

export interface DemoWarrantBlock {
  id: string
  name: string
  shareClassId: string
  outstanding: number
  cashRaised: number
}

export interface DemoNoteBlock {
  id: string
  name: string
  principal: number
  interest: number
}

export interface DemoIssuer {
  /** Carta ids are protobuf int64, sent as JSON strings; the sandbox keeps readable string ids. */
  id: string
  legalName: string
  dbaName: string
  website: string
  shareClasses: DemoShareClass[]
  optionPools: DemoOptionPool[]
  warrantBlocks: DemoWarrantBlock[]
  noteBlocks: DemoNoteBlock[]
}

export const demoIssuers: DemoIssuer[] = [
  {
    id: 'iss_lumen',
    legalName: 'Lumen Robotics, Inc.',
    dbaName: 'Lumen',
    website: 'https://lumen.example',
    shareClasses: [
      {
        id: '101',
        name: 'Common',
        prefix: 'CS',
        type: 'COMMON',
        authorized: 15_000_000,
        outstanding: 6_000_000,
        cashRaised: 6_000,
        seniority: 1,
      },
      {
        id: '102',
        name: 'Series Seed Preferred',
        prefix: 'PS',
        type: 'PREFERRED',
        authorized: 1_850_000,
        outstanding: 1_850_000,
        cashRaised: 1_850_000,
        seniority: 2,
      },
      {
        id: '103',
        name: 'Series A Preferred',
        prefix: 'PA',
        type: 'PREFERRED',
        authorized: 2_400_000,
        outstanding: 2_400_000,
        cashRaised: 7_200_000,
        seniority: 3,
      },
    ],
    optionPools: [
      {
        id: '104',
        name: '2021 Equity Incentive Plan',
        shareClassId: '101',
        authorized: 1_250_000,
        outstandingAwards: 910_000,
      },
    ],
    warrantBlocks: [],
    noteBlocks: [],
  },
  {
    id: 'iss_harbor',
    legalName: 'Harbor Analytics Corp.',
    dbaName: 'Harbor',
    website: 'https://harbor.example',
    shareClasses: [
      {
        id: '201',
        name: 'Common',
        prefix: 'CS',
        type: 'COMMON',
        authorized: 20_000_000,
        outstanding: 8_500_000,
        cashRaised: 8_500,
        seniority: 1,
      },
      {
        id: '202',
        name: 'Series A Preferred',
        prefix: 'PA',
        type: 'PREFERRED',
        authorized: 3_250_000,
        outstanding: 3_100_000,
        cashRaised: 9_300_000,
        seniority: 2,
      },
    ],
    optionPools: [
      { id: '203', name: '2019 Stock Plan', shareClassId: '201', authorized: 1_900_000, outstandingAwards: 1_420_000 },
    ],
    warrantBlocks: [{ id: '204', name: 'Series A Warrants', shareClassId: '202', outstanding: 150_000, cashRaised: 0 }],
    noteBlocks: [],
  },
  {
    id: 'iss_quill',
    legalName: 'Quill & Ledger Software LLC',
    dbaName: 'Quill',
    website: 'https://quill.example',
    shareClasses: [
      {
        id: '301',
        name: 'Common Units',
        prefix: 'CU',
        type: 'COMMON',
        authorized: 1_200_000,
        outstanding: 1_000_000,
        cashRaised: 250_000,
        seniority: 1,
      },
    ],
    optionPools: [
      { id: '302', name: 'Profits Interest Plan', shareClassId: '301', authorized: 120_000, outstandingAwards: 80_000 },
    ],
    warrantBlocks: [],
    noteBlocks: [],
  },
  {
    id: 'iss_northwind',
    legalName: 'Northwind Bio Therapeutics, Inc.',
    dbaName: 'Northwind Bio',
    website: 'https://northwind.example',
    shareClasses: [
      {
        id: '401',
        name: 'Common',
        prefix: 'CS',
        type: 'COMMON',
        authorized: 30_000_000,
        outstanding: 12_000_000,
        cashRaised: 12_000,
        seniority: 1,
      },
      {
        id: '402',
        name: 'Series A Preferred',
        prefix: 'PA',
        type: 'PREFERRED',
        authorized: 4_500_000,
        outstanding: 4_500_000,
        cashRaised: 13_500_000,
        seniority: 2,
      },
      {
        id: '403',
        name: 'Series B Preferred',
        prefix: 'PB',
        type: 'PREFERRED',
        authorized: 3_750_000,
        outstanding: 3_750_000,
        cashRaised: 30_000_000,
        seniority: 3,
      },
    ],
    optionPools: [
      {
        id: '404',
        name: '2020 Equity Incentive Plan',
        shareClassId: '401',
        authorized: 2_600_000,
        outstandingAwards: 2_050_000,
      },
    ],
    warrantBlocks: [],
    noteBlocks: [],
  },
  {
    id: 'iss_tidepool',
    legalName: 'Tidepool Energy, Inc.',
    dbaName: 'Tidepool',
    website: 'https://tidepool.example',
    shareClasses: [
      {
        id: '501',
        name: 'Common',
        prefix: 'CS',
        type: 'COMMON',
        authorized: 10_000_000,
        outstanding: 5_200_000,
        cashRaised: 5_200,
        seniority: 1,
      },
    ],
    optionPools: [
      {
        id: '502',
        name: '2023 Stock Option Plan',
        shareClassId: '501',
        authorized: 780_000,
        outstandingAwards: 430_000,
      },
    ],
    warrantBlocks: [],
    noteBlocks: [{ id: '503', name: 'Seed Convertible Notes', principal: 1_500_000, interest: 87_500 }],
  },
]

/** Investment firms a demo user can see (Carta's Investor API, scope read_investor_firms). */
export const demoFirms: Record<string, Array<{ id: string; name: string }>> = {
  cu_1006: [{ id: 'firm_haddad', name: 'Haddad Angel Partners' }],
}

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
  return `Access described by Carta as ${scope}.`
}
