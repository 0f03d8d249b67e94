// The one way background work runs (src/README.md, "Background jobs"). A job is a pass of work
// (send due revocations, resume rollout builds, run a due report slot, prune old rows); the runner
// repeats it on an interval once started, runs it when kicked, and never lets it overlap itself.
// Tests leave the runner stopped and call run() by hand; a failure in a kicked or scheduled pass
// is logged, never thrown: a bad pass must not take the server down.
import type { Logger } from '../log.js'

export interface Job<R = unknown> {
  /** Milliseconds between passes while the runner is started; absent: only when kicked (or own schedule). */
  everyMs?: number
  /** One pass. Resolves with a summary (logged by the job itself, returned to run()'s caller). */
  run(log: Logger): Promise<R>
  /** Extra start-up of a job with its own schedule (e.g. a cron), after the first pass is kicked. */
  start?(log: Logger): Promise<void>
  /** Stops the job's own schedule and asks work it started in the background to stop soon. */
  stop?(): Promise<void>
  /** Resolves when work the job started in the background (beyond run()) has ended. */
  idle?(): Promise<void>
}

export type JobSet = Record<string, Job>

/** What a pass of job K resolves with. */
export type PassResult<J extends JobSet, K extends keyof J> = Awaited<ReturnType<J[K]['run']>>

interface Slot {
  /** The pass in flight, if any. */
  running: Promise<unknown> | null
  /** A kick arrived during the pass: one more pass follows it. */
  again: Promise<unknown> | null
}

export class JobRunner<J extends JobSet> {
  private readonly slots = new Map<keyof J, Slot>()
  private readonly timers: NodeJS.Timeout[] = []
  private state: 'idle' | 'started' | 'stopped' = 'idle'

  constructor(
    private readonly jobs: J,
    private readonly logFor: (name: string) => Logger,
  ) {
    for (const name of Object.keys(jobs)) this.slots.set(name, { running: null, again: null })
  }

  /** True between start() and stop(): passes run on their intervals and kicks are honoured. */
  get started(): boolean {
    return this.state === 'started'
  }

  /** A job by name, e.g. to read its own state (the report schedule's next slot). */
  get<K extends keyof J>(name: K): J[K] {
    return this.jobs[name]
  }

  /** Starts every job: a first pass now, then one every `everyMs`, and the job's own schedule. */
  async start(): Promise<void> {
    if (this.state !== 'idle') return
    this.state = 'started'
    for (const [name, job] of Object.entries(this.jobs)) {
      if (job.everyMs !== undefined) {
        const timer = setInterval(() => this.kick(name), job.everyMs)
        timer.unref()
        this.timers.push(timer)
        this.kick(name)
      }
      await job.start?.(this.logFor(name))
    }
  }

  /** Asks for a pass soon (e.g. right after rows were queued). No-op unless started. */
  kick(name: keyof J): void {
    if (this.state !== 'started') return
    this.run(name).catch((err: unknown) => this.logFor(String(name)).error({ err }, 'job pass failed'))
  }

  /**
   * Runs a pass now and resolves with its result (tests drive jobs this way). Passes of one job never
   * overlap: during a pass, callers share the ONE pass that follows it. Null once stopped.
   */
  run<K extends keyof J>(name: K): Promise<PassResult<J, K> | null> {
    const slot = this.slots.get(name)
    if (!slot) return Promise.reject(new Error(`no job named ${String(name)}`))
    if (this.state === 'stopped') return Promise.resolve(null)
    if (slot.running) {
      slot.again ??= slot.running
        .catch(() => null)
        .then(() => {
          slot.again = null
          return this.run(name)
        })
      return slot.again as Promise<PassResult<J, K> | null>
    }
    // J[K]['run'] returns PassResult<J, K> by definition; TypeScript cannot follow the indexed access.
    const pass = (this.jobs[name]!.run(this.logFor(String(name))) as Promise<PassResult<J, K>>).finally(() => {
      if (slot.running === pass) slot.running = null
    })
    slot.running = pass
    return pass
  }

  /** Resolves once no pass runs and every job's background work has ended (kicked work included). */
  async idle(): Promise<void> {
    for (;;) {
      const passes = [...this.slots.values()].flatMap((s) => [s.running, s.again]).filter((p) => p !== null)
      await Promise.all(passes.map((p) => p.catch(() => null)))
      await Promise.all(Object.values(this.jobs).map((job) => job.idle?.()))
      if ([...this.slots.values()].every((s) => s.running === null && s.again === null)) return
    }
  }

  /** Stops the intervals and the jobs' schedules, then waits for work in flight. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return
    this.state = 'stopped'
    for (const timer of this.timers.splice(0)) clearInterval(timer)
    await Promise.all(Object.values(this.jobs).map((job) => job.stop?.()))
    await this.idle()
  }
}
