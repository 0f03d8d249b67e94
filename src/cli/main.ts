// Command line: `npm run cli -- <command> [options]`. Each command lives in its own module.
import { openRuntime } from '../runtime.js'
import { apiKeyCommand, apiKeyUsage } from './api-key.js'
import { operatorCommand } from './operator.js'
import { reportCommand } from './report.js'
import { exportLinksCommand, exportLinksUsage } from './export-links.js'
import { importGrantsCommand, importGrantsUsage } from './import-grants.js'
import { discoverScopesCommand, discoverScopesUsage } from './discover-scopes.js'
import { webhookCommand, webhookUsage } from './webhook.js'
import { sendLinksCommand, sendLinksUsage } from './send-links.js'

type Command = { summary: string; run: (args: string[]) => Promise<number> }

const commands: Record<string, Command> = {
  migrate: {
    summary: 'apply pending migrations and sync the declared Carta apps',
    run: async () => {
      const { db } = await openRuntime()
      await db.destroy()
      console.log('Database is at the latest schema.')
      return 0
    },
  },
  operator: {
    summary:
      'operator create <username> [--role R] | reset-password <username> | set-role <username> --role R (viewer, operator, admin)',
    run: operatorCommand,
  },
  report: {
    summary: 'report [--json] [--quiet]: run a coverage report now, write its files, print the summary',
    run: reportCommand,
  },
  'api-key': { summary: apiKeyUsage.replace('Usage: npm run cli -- ', ''), run: (args) => apiKeyCommand(args) },
  webhook: { summary: webhookUsage.replace('Usage: npm run cli -- ', ''), run: (args) => webhookCommand(args) },
  'export-links': {
    summary: exportLinksUsage.replace('Usage: npm run cli -- ', ''),
    run: (args) => exportLinksCommand(args),
  },
  'discover-scopes': {
    summary: discoverScopesUsage.replace('Usage: npm run cli -- ', ''),
    run: (a) => discoverScopesCommand(a),
  },
  'import-grants': {
    summary: importGrantsUsage.replace('Usage: npm run cli -- ', ''),
    run: (a) => importGrantsCommand(a),
  },
  'send-links': {
    summary: sendLinksUsage.replace('Usage: npm run cli -- ', ''),
    run: (args) => sendLinksCommand(args),
  },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length))
  return [
    'Usage: npm run cli -- <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n')
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (!name || name === 'help' || name === '--help') {
    console.log(usage())
    return name ? 0 : 2
  }
  const command = commands[name]
  if (!command) {
    console.error(`Unknown command "${name}".\n\n${usage()}`)
    return 2
  }
  try {
    return await command.run(args)
  } catch (err) {
    console.error(`${name} failed: ${(err as Error).message}`)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
