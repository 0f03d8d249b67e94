// The in-process runner of rollout builds (build.ts). The create route kicks it right after the
// rollout row is committed, always (tests too, where background jobs are off: they await
// waitForRolloutBuilds). With background jobs on it also resumes, on start and every
// RESCAN_INTERVAL_MS, any rollout left 'building' by a crash, a restart or another instance
// whose lease expired. Failures are logged, never thrown: a bad build must not take the server down.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { AppDeps } from '../app.js'
import { type BuildStats, newBuildOwner, runRolloutBuild } from './build.js'

export const RESCAN_INTERVAL_MS = 30_000

class RolloutBuildRunner {
  private readonly running = new Map<number, Promise<BuildStats | null>>()
  private stopped = false
  private readonly owner = newBuildOwner()
  /** A rescan in flight: idle() waits for it, or a build it is about to kick would be missed. */
  private scanning: Promise<void> | null = null

  constructor(
    private readonly deps: AppDeps,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Starts building the rollout unless this process already is; resolves when that run ends. */
  kick(rolloutId: number): Promise<BuildStats | null> {
    const current = this.running.get(rolloutId)
    if (current) return current
    if (this.stopped) return Promise.resolve(null)
    const { db, clock } = this.deps
    const run = runRolloutBuild(db, rolloutId, {
      owner: this.owner,
      now: () => clock.now(),
      shouldStop: () => this.stopped,
    })
      .then((stats) => {
        const seconds = Math.round(stats.totalMs) / 1000
        if (stats.outcome === 'ready')
          this.log.info(
            {
              rolloutId,
              chunks: stats.chunks,
              users: stats.users,
              seconds,
              maxChunkMs: Math.round(stats.maxChunkMs),
              finishMs: Math.round(stats.finishMs),
            },
            'rollout built',
          )
        else this.log.info({ rolloutId, outcome: stats.outcome, users: stats.users }, 'rollout build paused')
        return stats
      })
      .catch((err: unknown) => {
        this.log.error({ err, rolloutId }, 'rollout build failed')
        return null
      })
      .finally(() => this.running.delete(rolloutId))
    this.running.set(rolloutId, run)
    return run
  }

  /** Kicks every active rollout still 'building' (left by a crash, a restart or an expired lease). */
  resumeAll(): Promise<void> {
    const scan = (async () => {
      const rows = await this.deps.db
        .selectFrom('rollouts')
        .select('id')
        .where('status', '=', 'active')
        .where('build_status', '=', 'building')
        .orderBy('id')
        .execute()
      for (const { id } of rows) void this.kick(id)
    })().finally(() => {
      if (this.scanning === scan) this.scanning = null
    })
    this.scanning = scan
    return scan
  }

  /** Resolves once no rescan or build runs in this process (builds kicked meanwhile included). */
  async idle(): Promise<void> {
    while (this.scanning || this.running.size > 0) {
      if (this.scanning) await this.scanning.catch(() => {})
      await Promise.all([...this.running.values()])
    }
  }

  /** Stops after the chunk in flight (the lease is released; another start resumes from the cursor). */
  async stop(): Promise<void> {
    this.stopped = true
    await this.idle()
  }
}

const runners = new WeakMap<AppDeps, RolloutBuildRunner>()

/** Starts the background build of a just-created rollout (no-op once the app is closing). */
export function kickRolloutBuild(app: FastifyInstance, rolloutId: number): void {
  void runners.get(app.deps)?.kick(rolloutId)
}

/** For tests and CLIs: resolves when every build kicked in this app has ended. */
export async function waitForRolloutBuilds(app: FastifyInstance): Promise<void> {
  await runners.get(app.deps)?.idle()
}

export default async function rolloutBuildJobs(app: FastifyInstance): Promise<void> {
  const log = app.log.child({ job: 'rollout-build' })
  const runner = new RolloutBuildRunner(app.deps, log)
  runners.set(app.deps, runner)
  let timer: NodeJS.Timeout | null = null
  const rescan = () =>
    void runner.resumeAll().catch((err: unknown) => log.error({ err }, 'rollout build rescan failed'))

  if (app.deps.backgroundJobs) {
    app.addHook('onReady', async () => {
      timer = setInterval(rescan, RESCAN_INTERVAL_MS)
      timer.unref()
      rescan()
    })
  }
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer)
    timer = null
    await runner.stop()
    runners.delete(app.deps)
  })
}
