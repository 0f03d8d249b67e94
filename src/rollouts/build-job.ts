// The rollout build as a background job (src/jobs/runner.ts): each pass finds the active rollouts
// still 'building' (just created, left by a crash or a restart, or by another instance whose lease
// expired) and builds each in the background (build.ts), one build per rollout in this process.
// The dashboard kicks a pass right after creating a rollout; with the runner started, a pass also
// runs at start and every RESCAN_INTERVAL_MS. Failures are logged, never thrown.
import type { Clock } from '../clock.js'
import type { Db } from '../db/index.js'
import type { Job } from '../jobs/runner.js'
import type { Logger } from '../log.js'
import { type BuildStats, newBuildOwner, releaseDeadLocalLeases, runRolloutBuild } from './build.js'

export const RESCAN_INTERVAL_MS = 30_000

export function rolloutBuildJob(deps: { db: Db; clock: Clock }): Job {
  const running = new Map<number, Promise<BuildStats | null>>()
  const owner = newBuildOwner()
  let stopped = false
  let firstPass = true

  const build = (rolloutId: number, log: Logger): Promise<BuildStats | null> => {
    const run = runRolloutBuild(deps.db, rolloutId, {
      owner,
      now: () => deps.clock.now(),
      shouldStop: () => stopped,
    })
      .then((stats) => {
        const seconds = Math.round(stats.totalMs) / 1000
        if (stats.outcome === 'ready')
          log.info(
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
        else log.info({ rolloutId, outcome: stats.outcome, users: stats.users }, 'rollout build paused')
        return stats
      })
      .catch((err: unknown) => {
        log.error({ err, rolloutId }, 'rollout build failed')
        return null
      })
      .finally(() => running.delete(rolloutId))
    running.set(rolloutId, run)
    return run
  }

  return {
    everyMs: RESCAN_INTERVAL_MS,
    run: async (log) => {
      if (stopped) return { started: 0 }
      if (firstPass) {
        // Resume at once what this host's dead previous run left mid-build (README, "Rollouts").
        firstPass = false
        const released = await releaseDeadLocalLeases(deps.db, owner, deps.clock.now())
        if (released.length) log.info({ rolloutIds: released }, 'took over builds left by a dead previous run')
      }
      const rows = await deps.db
        .selectFrom('rollouts')
        .select('id')
        .where('status', '=', 'active')
        .where('build_status', '=', 'building')
        .orderBy('id')
        .execute()
      const fresh = rows.filter(({ id }) => !running.has(id))
      for (const { id } of fresh) void build(id, log)
      return { started: fresh.length }
    },
    // Builds stop after the chunk in flight; the lease is released and another start resumes them.
    stop: async () => {
      stopped = true
    },
    idle: async () => {
      while (running.size > 0) await Promise.all([...running.values()])
    },
  }
}
