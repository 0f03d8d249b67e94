// Every background job of the application, by name: one line per job (src/README.md,
// "Where each kind of change goes"). The HTTP layer's jobs plugin runs them (src/http/plugins/jobs.ts).
import { stateCleanupJob } from '../flows/states.js'
import type { AppDeps } from '../deps.js'
import { sessionCleanupJob } from '../db/prune.js'
import { revocationJob } from '../grants/revocation.js'
import { discoveryJob } from '../imports/discovery.js'
import type { Logger } from '../log.js'
import { mailJob } from '../mail/job.js'
import { reportScheduleJob } from '../reports/scheduler.js'
import { rolloutBuildJob } from '../rollouts/build-job.js'
import { webhookDeliveryJob } from '../webhooks/delivery.js'

export function createJobs(deps: AppDeps, logFor: (name: string) => Logger) {
  return {
    revocations: revocationJob(deps),
    'rollout-build': rolloutBuildJob(deps),
    reports: reportScheduleJob({ ...deps, log: logFor('reports') }),
    'oauth-states': stateCleanupJob(deps),
    sessions: sessionCleanupJob(deps),
    'scope-discovery': discoveryJob({ ...deps, log: logFor('scope-discovery') }),
    webhooks: webhookDeliveryJob({
      ...deps,
      concurrency: deps.config.api.webhookConcurrency,
      timeoutMs: deps.config.api.webhookTimeoutMs,
    }),
    mail: mailJob(deps),
  }
}

export type AppJobs = ReturnType<typeof createJobs>
