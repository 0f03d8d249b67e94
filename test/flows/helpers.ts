// Shared steps of the connect-flow tests.
import type { Db } from '../../src/db/index.js'
import type { Agent } from '../helpers/browser-agent.js'

export interface Started {
  state: string
  authorizeUrl: URL
  redirectUri: string
}

/** GET /carta/connect → 303 to Carta's authorize endpoint; returns what Carta would receive. */
export async function beginConnect(agent: Agent, baseUrl: string, appKey?: string): Promise<Started> {
  const res = await agent.get(`${baseUrl}/carta/connect${appKey ? `?app=${encodeURIComponent(appKey)}` : ''}`)
  if (res.status !== 303 || !res.location) throw new Error(`connect answered ${res.status}: ${res.text.slice(0, 300)}`)
  const authorizeUrl = new URL(res.location)
  return {
    state: authorizeUrl.searchParams.get('state') ?? '',
    authorizeUrl,
    redirectUri: authorizeUrl.searchParams.get('redirect_uri') ?? '',
  }
}

export async function callback(agent: Agent, baseUrl: string, params: Record<string, string>) {
  return agent.get(`${baseUrl}/carta/callback?${new URLSearchParams(params)}`)
}

export async function ledgerCounts(db: Db): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const table of ['end_users', 'grants', 'grant_scopes', 'grant_tokens', 'token_revocations'] as const) {
    const row = await db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    counts[table] = Number(row.n)
  }
  return counts
}

export const EMPTY_LEDGER = { end_users: 0, grants: 0, grant_scopes: 0, grant_tokens: 0, token_revocations: 0 }

export function warnLines(logs: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return logs.filter((l) => l.level === 40)
}
