// The logging surface domain code uses: the shape of pino's methods (Fastify's logger, or the
// CLI's console adapter), so modules outside src/http/ need no Fastify type to log.
export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** For callers that want no log lines. */
export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
