// Harness for the two-instance test: the standalone sandbox Carta on its own port and several
// real app processes (`tsx src/server.ts`) on one PostgreSQL schema, configured exactly as a
// deployment would be (environment variables only).
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Proc {
  name: string
  child: ChildProcess
  /** Everything written to stdout and stderr so far. */
  output(): string
  /** Parsed JSON log lines. */
  logs(): Array<Record<string, unknown>>
  stop(): Promise<void>
}

/** Spawns `node --import tsx <script>` and resolves once `ready` appears in its output. */
export async function startProcess(
  name: string,
  script: string,
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs = 60_000,
): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (c) => (out += c))
  child.stderr!.on('data', (c) => (out += c))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const proc: Proc = {
    name,
    child,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>]
          } catch {
            return []
          }
        }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
    },
  }
  const deadline = Date.now() + timeoutMs
  while (!ready.test(out)) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${out}`)
    if (Date.now() > deadline) {
      await proc.stop()
      throw new Error(`${name} did not become ready in ${timeoutMs} ms:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return proc
}

export const APPS = {
  v1: {
    key: 'production-v1',
    clientId: 'multi-v1',
    secretEnv: 'MULTI_V1_CLIENT_SECRET',
    scopes: ['read_user_info', 'read_issuer_info'],
  },
  v2: {
    key: 'production-v2',
    clientId: 'multi-v2',
    secretEnv: 'MULTI_V2_CLIENT_SECRET',
    scopes: ['read_user_info', 'read_issuer_info', 'read_issuer_capitalizationtablesummary'],
  },
}

/** Shared configuration every instance must agree on, plus a private data directory. */
export function sharedSetup(sandboxPort: number): {
  dir: string
  appsFile: string
  env: Record<string, string>
  cleanup(): void
} {
  const dir = mkdtempSync(join(tmpdir(), 'scope-ledger-multi-'))
  const base = `http://127.0.0.1:${sandboxPort}`
  const appsFile = join(dir, 'apps.json')
  writeFileSync(
    appsFile,
    JSON.stringify({
      apps: [
        {
          key: APPS.v1.key,
          name: 'Production v1',
          environment: 'production',
          clientId: APPS.v1.clientId,
          clientSecretEnv: APPS.v1.secretEnv,
          authBaseUrl: base,
          apiBaseUrl: base,
          scopes: APPS.v1.scopes,
          current: true,
        },
        {
          key: APPS.v2.key,
          name: 'Production v2',
          environment: 'production',
          clientId: APPS.v2.clientId,
          clientSecretEnv: APPS.v2.secretEnv,
          authBaseUrl: base,
          apiBaseUrl: base,
          scopes: APPS.v2.scopes,
          current: false,
        },
      ],
    }),
  )
  const env = {
    NODE_ENV: 'development',
    CARTA_APPS_FILE: appsFile,
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    LINK_SIGNING_SECRET: randomBytes(32).toString('base64url'),
    TOKEN_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    [APPS.v1.secretEnv]: randomBytes(24).toString('base64url'),
    [APPS.v2.secretEnv]: randomBytes(24).toString('base64url'),
    LOG_LEVEL: 'info',
  }
  return { dir, appsFile, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
