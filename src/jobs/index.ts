// Every background job of the application, by name: one line per job (src/README.md,
// "Where each kind of change goes"). The HTTP layer's jobs plugin runs them (src/http/plugins/jobs.ts).
import { stateCleanupJob } from '../flows/states.js'
import type { AppDeps } from '../deps.js'
import { revocationJob } from '../grants/revocation.js'
import type { Logger } from '../log.js'
import { mailJob } from '../mail/job.js'
import { reportScheduleJob } from '../reports/scheduler.js'
import { rolloutBuildJob } from '../rollouts/build-job.js'

export function createJobs(deps: AppDeps, logFor: (name: string) => Logger) {
  return {
    revocations: revocationJob(deps),
    'rollout-build': rolloutBuildJob(deps),
    reports: reportScheduleJob({ ...deps, log: logFor('reports') }),
    'oauth-states': stateCleanupJob(deps),
    mail: mailJob(deps),
  }
}

export type AppJobs = ReturnType<typeof createJobs>
