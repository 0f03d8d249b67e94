// One address for browsers: a GET for a page under another host name (127.0.0.1 when PUBLIC_URL
// says localhost, say) is redirected to the same path on PUBLIC_URL before anything starts. Cookies
// are per host (RFC 6265 §5.3), so a flow begun on one name and returning from Carta to the other
// (the redirect URI is always PUBLIC_URL's) would find no session and no state.
// Left alone: the sandbox (it stands in for another server), assets, the health probe, the API,
// and every non-GET request (a redirect would turn a form POST into a GET).
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'

const EXEMPT = ['/sandbox', '/assets', '/healthz', '/api']
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' }

/** host[:port] in lower case, without the scheme's default port. */
function normalHost(host: string, protocol: string): string {
  const lower = host.toLowerCase()
  const port = DEFAULT_PORTS[protocol]
  return port && lower.endsWith(`:${port}`) ? lower.slice(0, -(port.length + 1)) : lower
}

const publicHost: FastifyPluginAsync = async (app) => {
  const publicUrl = new URL(app.deps.config.publicUrl)
  const expected = normalHost(publicUrl.host, publicUrl.protocol)
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return
    const path = request.url
    if (EXEMPT.some((p) => path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}?`))) return
    // request.host honours X-Forwarded-Host only with TRUST_PROXY (README, "Configuration").
    const host = request.host ? normalHost(request.host, publicUrl.protocol) : ''
    if (!host || host === expected) return
    request.log.info({ host, publicHost: expected }, 'page requested on another host name: sent to PUBLIC_URL')
    return reply.redirect(`${publicUrl.origin}${path}`, 307)
  })
}

export default fp(publicHost, { name: 'public-host', dependencies: ['deps'] })
