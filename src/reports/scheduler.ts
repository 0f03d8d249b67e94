// The report schedule. Two halves, so tests can drive it with a ManualClock:
//  - nextSlot(): the next scheduled time after a given instant (croner computes it, in the
//    configured time zone);
//  - tick(): if the pending slot is due by the injected clock, run THAT slot (its ISO time is the
//    slot key — never "now"), then move on to the following slot.
// In production a croner job calls tick() at each scheduled time.
//
// Missed slots are NOT back-filled: if the app was down (or asleep) across several slots, the
// next tick runs only the latest due slot, and a restart simply waits for the next one. An
// operator can run a report on demand at any time.
import { Cron } from 'croner'
import { ConfigError } from '../config.js'
import type { Job } from '../jobs/runner.js'
import type { RunOutcome } from './runs.js'
import { type ReportContext, failInterruptedRuns, runReport } from './runs.js'

/** The first slot strictly after `after`, or null if the expression never fires again. */
export function nextSlot(cron: string, timeZone: string, after: number): number | null {
  let job: Cron
  try {
    job = new Cron(cron, { timezone: timeZone, paused: true })
  } catch (err) {
    // config.ts checks the field count; croner knows the rest (ranges, names).
    throw new ConfigError('REPORT_CRON', `is not a valid cron expression (${(err as Error).message})`)
  }
  const next = job.nextRun(new Date(after))
  return next ? next.getTime() : null
}

export function slotKey(slot: number): string {
  return new Date(slot).toISOString()
}

export class ReportScheduler {
  private pending: number | null
  private job: Cron | null = null
  private running: Promise<RunOutcome | null> | null = null

  constructor(private readonly ctx: ReportContext) {
    this.pending = this.next(ctx.clock.now())
  }

  /** The slot the scheduler waits for (epoch ms), null if none. */
  get pendingSlot(): number | null {
    return this.pending
  }

  private next(after: number): number | null {
    return nextSlot(this.ctx.config.reports.cron, this.ctx.config.reports.timeZone, after)
  }

  /**
   * Runs the pending slot if it is due by the clock. When several slots are due (the process was
   * suspended), only the latest runs. Never throws: a failed run is recorded and the schedule
   * moves on.
   */
  async tick(): Promise<RunOutcome | null> {
    if (this.running) return this.running
    const now = this.ctx.clock.now()
    if (this.pending === null || this.pending > now) return null
    let slot = this.pending
    for (let following = this.next(slot); following !== null && following <= now; following = this.next(slot))
      slot = following
    this.pending = this.next(slot)
    this.running = this.runSlot(slot).finally(() => {
      this.running = null
    })
    return this.running
  }

  /** Runs one given slot (the UNIQUE slot key makes a second attempt, here or elsewhere, a no-op). */
  async runSlot(slot: number): Promise<RunOutcome | null> {
    try {
      const outcome = await runReport(this.ctx, { slotKey: slotKey(slot), trigger: 'schedule' })
      if (outcome.status === 'succeeded') await outcome.delivery
      return outcome
    } catch (err) {
      this.ctx.log.error({ slot: slotKey(slot), error: (err as Error).message }, 'scheduled report failed unexpectedly')
      return null
    }
  }

  /** Starts the real-time croner job; each firing calls tick(). */
  async start(): Promise<void> {
    const { cron, timeZone } = this.ctx.config.reports
    await failInterruptedRuns(this.ctx.db, this.ctx.clock.now()).catch(() => 0)
    this.pending = this.next(this.ctx.clock.now())
    // protect: a slot firing while a long run is still going waits for the next tick.
    this.job = new Cron(cron, { timezone: timeZone, protect: true, catch: true, unref: true }, async () => {
      await this.tick()
    })
    this.ctx.log.info(
      { cron, timeZone, next: this.pending === null ? null : slotKey(this.pending) },
      'report schedule started',
    )
  }

  async stop(): Promise<void> {
    this.job?.stop()
    this.job = null
    await this.running?.catch(() => null)
  }
}

/** The schedule as a background job: croner fires tick(); run() (tests, by hand) ticks once. */
export function reportScheduleJob(ctx: ReportContext): Job<RunOutcome | null> & { scheduler: ReportScheduler } {
  const scheduler = new ReportScheduler(ctx)
  return {
    scheduler,
    run: () => scheduler.tick(),
    start: () => scheduler.start(),
    stop: () => scheduler.stop(),
  }
}
