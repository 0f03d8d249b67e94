// Calling the API as the integrator's product does: JSON over HTTP with a bearer key.
import { type ApiPermission, createApiKey } from '../../../../src/api/keys.js'
import type { TestApp } from '../../../helpers/app.js'

export interface ApiResponse {
  status: number
  headers: Headers
  body: Record<string, unknown>
  text: string
}

export async function newKey(app: TestApp, permissions: ApiPermission[] = ['read', 'tokens', 'links', 'connect']) {
  const { key, info } = await createApiKey(
    app.db,
    { name: `test ${permissions.join(',')}`, permissions, actor: 'operator:test' },
    app.clock.now(),
  )
  return { key, id: info.id }
}

export async function api(
  app: TestApp,
  key: string | null,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  let parsed: Record<string, unknown> = {}
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body: parsed, text }
}
