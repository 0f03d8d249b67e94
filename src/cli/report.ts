// `npm run cli -- report [--json]`: runs a report now (trigger manual) with the same code as the
// schedule, writes the same files, prints a summary table (or the snapshot JSON with --json),
// shows per-rollout progress on stderr, and exits non-zero when the run fails.
import { systemClock } from '../clock.js'
import { openRuntime } from '../runtime.js'
import { summaryTable, toJson } from '../reports/formats.js'
import type { Logger } from '../log.js'
import { manualSlotKey, runReport } from '../reports/runs.js'
import { webhookOrigin } from '../reports/webhook.js'

export const reportUsage =
  'Usage: npm run cli -- report [--json] [--quiet]\n  --json   print the report JSON to stdout instead of the table\n  --quiet  no progress lines on stderr'

export async function reportCommand(args: string[]): Promise<number> {
  const unknown = args.filter((a) => a !== '--json' && a !== '--quiet')
  if (unknown.length > 0) {
    console.error(`Unknown option ${unknown.join(' ')}.\n${reportUsage}`)
    return 2
  }
  const json = args.includes('--json')
  const quiet = args.includes('--quiet')
  const { config, db } = await openRuntime()
  // Only warnings and errors reach the terminal (stderr), as plain sentences.
  const log: Logger = {
    info: () => {},
    warn: (obj, msg) => console.error(`warning: ${msg} ${JSON.stringify(obj)}`),
    error: (obj, msg) => console.error(`error: ${msg}${'error' in obj ? `: ${(obj as { error: string }).error}` : ''}`),
  }
  try {
    const started = Date.now()
    const outcome = await runReport(
      { db, config, clock: systemClock, log },
      {
        slotKey: manualSlotKey(),
        trigger: 'manual',
        onProgress: quiet
          ? undefined
          : (done, total, name) =>
              process.stderr.write(
                `[${done}/${total}] ${name} measured (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
              ),
      },
    )
    if (outcome.status !== 'succeeded') {
      console.error(`Report failed: ${outcome.status === 'failed' ? outcome.error : 'slot already taken'}`)
      return 1
    }
    if (json) {
      process.stdout.write(toJson(outcome.document))
    } else {
      console.log(summaryTable(outcome.document))
      console.log(`\nRun ${outcome.runId} · files in ${config.reports.dir}:`)
      for (const name of Object.values(outcome.files)) console.log(`  ${name}`)
    }
    if (config.reports.webhookUrl) {
      const delivered = await outcome.delivery
      const where = webhookOrigin(config.reports.webhookUrl)
      if (delivered?.ok) console.error(`Summary posted to ${where}.`)
      else
        console.error(
          `warning: posting the summary to ${where} failed: ${delivered?.error} (the report itself succeeded)`,
        )
    }
    return 0
  } finally {
    await db.destroy()
  }
}
