// A minimal browser over fetch: keeps cookies per host name — like a browser, not per port
// (RFC 6265 §8.5), so two app instances on 127.0.0.1:A and :B share a session cookie as they
// would behind one load-balanced name — never follows redirects by itself, and reads hidden
// form fields (CSRF tokens) out of pages.
export interface AgentResponse {
  status: number
  location: string | null
  headers: Headers
  text: string
  url: string
}

export class Agent {
  private readonly cookies = new Map<string, Map<string, string>>()

  async get(url: string): Promise<AgentResponse> {
    return this.request(url, { method: 'GET' })
  }

  async post(url: string, form: Record<string, string | string[]>): Promise<AgentResponse> {
    const body = new URLSearchParams()
    for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) body.append(k, item)
    return this.request(url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  }

  /** Follows redirects from `response` until a non-redirect answer (at most `max` hops). */
  async follow(response: AgentResponse, max = 10): Promise<AgentResponse> {
    let current = response
    for (let i = 0; i < max && current.location; i++)
      current = await this.get(new URL(current.location, current.url).toString())
    return current
  }

  async request(url: string, init: RequestInit): Promise<AgentResponse> {
    const host = new URL(url).hostname
    const jar = this.cookies.get(host) ?? new Map<string, string>()
    const headers = new Headers(init.headers)
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    const res = await fetch(url, { ...init, headers, redirect: 'manual' })
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') jar.delete(name)
      else jar.set(name, value)
    }
    this.cookies.set(host, jar)
    return {
      status: res.status,
      location: res.headers.get('location'),
      headers: res.headers,
      text: await res.text(),
      url,
    }
  }

  /** Current value of one cookie for the host of `url`. */
  cookieValue(url: string, name: string): string | undefined {
    return this.cookies.get(new URL(url).hostname)?.get(name)
  }

  cookieNames(url: string): string[] {
    return [...(this.cookies.get(new URL(url).hostname)?.keys() ?? [])]
  }
}

/** Value of a hidden input by name in an HTML page (first match). */
export function hiddenField(html: string, name: string): string {
  const match =
    new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(html) ??
    new RegExp(`<input[^>]*value="([^"]*)"[^>]*name="${name}"`).exec(html)
  if (!match) throw new Error(`no hidden field "${name}" in page`)
  return match[1]!
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
}
