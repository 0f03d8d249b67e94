// The configuration of a benchmark that serves the real app over HTTP on a free loopback port, with
// its data under data/bench (seeded ledgers are kept there between runs). `extra` adds the bench's
// own settings (its database file, limits lifted).
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig, projectRoot } from '../../src/config.js'
import { freePort } from '../helpers/app.js'

export const benchDataDir = resolve(projectRoot, 'data/bench')

export async function servedBenchConfig(extra: Record<string, string>) {
  mkdirSync(benchDataDir, { recursive: true })
  const port = await freePort()
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'development',
    DATA_DIR: benchDataDir,
    LOG_LEVEL: 'silent',
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...extra,
  })
  return { config, port }
}
