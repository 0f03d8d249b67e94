// Security headers (helmet): a strict CSP (everything from this app; forms may post on to Carta's
// authorize endpoint), HSTS only when cookies are secure (plain-HTTP local runs are not pinned).
import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

export default fp(
  async (app) => {
    const { config } = app.deps
    const cartaOrigins = [...new Set(config.apps.filter((a) => !a.sandbox).map((a) => new URL(a.authBaseUrl).origin))]
    await app.register(helmet, {
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          // Forms post to us and some redirect on to Carta's authorize endpoint.
          formAction: ["'self'", ...cartaOrigins],
          upgradeInsecureRequests: config.cookieSecure ? [] : null,
        },
      },
      strictTransportSecurity: config.cookieSecure,
    })
  },
  { name: 'security', dependencies: ['deps'] },
)
