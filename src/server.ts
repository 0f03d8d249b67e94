// Entry point for `npm start`: read config, migrate, build the app, listen, shut down cleanly.
import { buildApp } from './app.js'
import { systemClock } from './clock.js'
import { openRuntime, type Runtime } from './runtime.js'
import { startupTasks } from './startup.js'

async function main(): Promise<void> {
  let runtime: Runtime
  try {
    runtime = await openRuntime()
  } catch (err) {
    // Configuration and database problems are the operator's to fix: say what, no stack trace.
    console.error(`Scope Ledger cannot start: ${(err as Error).message}`)
    process.exit(1)
  }
  const { config, db } = runtime
  const app = await buildApp({ config, db, clock: systemClock })

  if (config.generatedSecrets.length > 0) {
    app.log.warn(
      { generated: config.generatedSecrets, file: `${config.dataDir}/dev-secrets.json` },
      'Using generated secrets for local use only (encryption key, session and link secrets, sandbox client secrets). Set them in the environment for any real deployment.',
    )
  }
  if (config.sandboxEnabled)
    app.log.info(`Sandbox Carta is on at ${config.publicUrl}/sandbox (demo only: it signs anyone in)`)
  await startupTasks({ config, db, clock: systemClock, log: app.log })

  let closing = false
  const shutdown = async (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    await app.close()
    await db.destroy()
    process.exit(0)
  }
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.on('SIGTERM', () => void shutdown('SIGTERM'))

  await app.listen({ host: config.host, port: config.port })
  app.log.info(`Scope Ledger is running at ${config.publicUrl}`)
}

void main()
