// What every part of the application is given: configuration, the database, the clock, the token
// cipher and the in-process single flight of token refreshes. Built once per app (buildApp, or a
// CLI command), passed explicitly; never held in module state (src/README.md, "Layers").
import type { Clock } from './clock.js'
import type { Config } from './config.js'
import type { Db } from './db/index.js'
import type { RefreshFlights } from './grants/access.js'
import { TokenCipher } from './grants/token-cipher.js'
import { type AppMetrics, createMetrics } from './metrics.js'

export interface AppDeps {
  config: Config
  db: Db
  clock: Clock
  cipher: TokenCipher
  /** One refresh promise per grant id in this process (src/grants/access.ts). */
  refreshes: RefreshFlights
  /** This app's Prometheus registry and counters (src/metrics.ts). */
  metrics: AppMetrics
}

export function createDeps(input: { config: Config; db: Db; clock: Clock }): AppDeps {
  return { ...input, cipher: new TokenCipher(input.config.tokenKeys), refreshes: new Map(), metrics: createMetrics() }
}
