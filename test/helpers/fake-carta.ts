// A programmable stand-in for Carta's token endpoint and API, on a loopback port, for the cases
// the sandbox will not produce (5xx, timeouts, malformed JSON, unrequested scopes…).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CartaAppConfig } from '../../src/config.js'

export interface FakeReply {
  status?: number
  body?: unknown
  /** Sent as is (for malformed JSON); overrides body. */
  raw?: string
  contentType?: string
  headers?: Record<string, string>
}

/** 'hang' = never answer (the client's timeout must fire). */
export type FakeHandler = (request: {
  form: URLSearchParams
  headers: IncomingMessage['headers']
  path: string
  /** The query string as sent ('' or '?…'). */
  search: string
}) => FakeReply | 'hang'

export interface TokenRequest {
  form: URLSearchParams
  authorization: string | undefined
}

export interface FakeCarta {
  url: string
  clientId: string
  clientSecret: string
  /** Programmable per test. */
  token: FakeHandler
  revoke: FakeHandler
  user: FakeHandler
  issuers: FakeHandler
  /** GET /v1alpha1/issuers/{id}/capitalizationTable */
  capTable: FakeHandler
  /** Any other GET /v1alpha1/… (404 in Carta's format unless programmed). */
  api: FakeHandler
  tokenRequests: TokenRequest[]
  revokeRequests: TokenRequest[]
  apiRequests: Array<{ path: string; search: string; authorization: string | undefined }>
  /** Environment for startTestApp: an apps file with one current production app pointing here. */
  env(extra?: Record<string, string>): Record<string, string>
  close(): Promise<void>
}

let counter = 0

export function bearerToken(scope?: string): FakeReply {
  counter++
  return {
    body: {
      access_token: `fake-access-${counter}-${Math.random().toString(36).slice(2)}`,
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: `fake-refresh-${counter}-${Math.random().toString(36).slice(2)}`,
      ...(scope === undefined ? {} : { scope }),
    },
  }
}

export async function startFakeCarta(
  t: { teardown(fn: () => unknown): void },
  scopes = ['read_user_info', 'read_issuer_info'],
): Promise<FakeCarta> {
  const hanging = new Set<ServerResponse>()
  const fake: FakeCarta = {
    url: '',
    clientId: 'fake-client',
    clientSecret: 'fake-secret-value-0123456789',
    token: () => bearerToken(),
    revoke: () => ({ status: 200, raw: '' }),
    user: () => ({ body: { id: 'carta-user-1', email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace' } }),
    issuers: () => ({ body: { issuers: [{ id: 7, legalName: 'Analytical Engines Inc.' }] } }),
    capTable: () => ({ status: 404, body: { code: 5, message: 'Resource not found' } }),
    api: () => ({ status: 404, body: { code: 5, message: 'Resource not found' } }),
    tokenRequests: [],
    revokeRequests: [],
    apiRequests: [],
    env: () => ({}),
    close: async () => {},
  }
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
    const requestUrl = new URL(req.url ?? '/', 'http://x')
    const path = requestUrl.pathname
    const search = requestUrl.search
    let handler: FakeHandler | undefined
    if (req.method === 'POST' && path === '/o/access_token/') {
      fake.tokenRequests.push({ form, authorization: req.headers.authorization })
      handler = fake.token
    } else if (req.method === 'POST' && path === '/o/revoke_token/') {
      fake.revokeRequests.push({ form, authorization: req.headers.authorization })
      handler = fake.revoke
    } else if (req.method === 'GET' && path.startsWith('/v1alpha1/')) {
      fake.apiRequests.push({ path, search, authorization: req.headers.authorization })
      handler =
        path === '/v1alpha1/user'
          ? fake.user
          : path === '/v1alpha1/issuers'
            ? fake.issuers
            : /^\/v1alpha1\/issuers\/[^/]+\/capitalizationTable$/.test(path)
              ? fake.capTable
              : fake.api
    }
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}')
      return
    }
    const reply = handler({ form, headers: req.headers, path, search })
    if (reply === 'hang') {
      hanging.add(res)
      return
    }
    const body = reply.raw ?? JSON.stringify(reply.body ?? {})
    res
      .writeHead(reply.status ?? 200, {
        'content-type': reply.contentType ?? 'application/json',
        'cache-control': 'no-store',
        ...reply.headers,
      })
      .end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  fake.url = `http://127.0.0.1:${port}`
  const dir = mkdtempSync(join(tmpdir(), 'fake-carta-'))
  const appsFile = join(dir, 'apps.json')
  writeFileSync(
    appsFile,
    JSON.stringify({
      apps: [
        {
          key: 'fake-prod',
          name: 'Fake production',
          environment: 'production',
          clientId: fake.clientId,
          clientSecretEnv: 'FAKE_CARTA_CLIENT_SECRET',
          authBaseUrl: fake.url,
          apiBaseUrl: fake.url,
          scopes,
          status: 'active',
          current: true,
        },
        {
          key: 'fake-old',
          name: 'Fake retired',
          environment: 'production',
          clientId: 'fake-old-client',
          clientSecretEnv: 'FAKE_CARTA_CLIENT_SECRET',
          authBaseUrl: fake.url,
          apiBaseUrl: fake.url,
          scopes: ['read_user_info'],
          status: 'retired',
        },
      ],
    }),
  )
  fake.env = (extra = {}) => ({
    CARTA_APPS_FILE: appsFile,
    FAKE_CARTA_CLIENT_SECRET: fake.clientSecret,
    SANDBOX: 'auto',
    ...extra,
  })
  let closed = false
  fake.close = async () => {
    if (closed) return
    closed = true
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(fake.close)
  return fake
}

/** A Carta app config pointing at `fake` (for calling the API client directly). */
export function fakeApp(fake: { url: string }, scopes = ['read_user_info', 'read_issuer_info']): CartaAppConfig {
  return {
    key: 'fake',
    name: 'Fake',
    environment: 'production',
    clientId: 'fake-client',
    clientSecretEnv: 'FAKE_CARTA_CLIENT_SECRET',
    clientSecret: 'fake-secret-value-0123456789',
    authBaseUrl: fake.url,
    apiBaseUrl: fake.url,
    scopes,
    status: 'active',
    current: true,
    sandbox: false,
  }
}
