// The gauges /metrics reads from the database at each scrape: ONE list, one entry per gauge, each
// a query function of the module that owns the rows (src/README.md, "Monitoring"). To add one (an
// outbox's depth, say): write the query in the owning module and append an entry here; the
// metrics plugin registers it. Labels stay low cardinality: app keys, statuses, rollout ids.
import { listApps } from '../../apps/apps.js'
import type { AppDeps } from '../../deps.js'
import { activeGrantsByAppAndSource } from '../../grants/queries.js'
import { revocationCountsByApp } from '../../grants/revocation.js'
import { mailHealth } from '../../mail/outbox.js'
import { reportRunCounts } from '../../reports/runs.js'
import { rolloutBuildProgress } from '../../rollouts/rollouts.js'
import { webhookCounts } from '../../webhooks/endpoints.js'

export interface GaugeSample {
  labels: Record<string, string>
  value: number
}

export interface DatabaseGauge {
  name: string
  help: string
  labelNames: readonly string[]
  read(deps: AppDeps): Promise<GaugeSample[]>
}

export const DATABASE_GAUGES: DatabaseGauge[] = [
  {
    name: 'scope_ledger_grants',
    help: 'Active grants by app key and scope source (reported by Carta, or assumed as requested).',
    labelNames: ['app', 'scopes_source'],
    read: async ({ db }) =>
      (await activeGrantsByAppAndSource(db)).map((r) => ({
        labels: { app: r.appKey, scopes_source: r.source },
        value: r.count,
      })),
  },
  {
    name: 'scope_ledger_revocation_queue',
    help: 'Tokens queued for revocation at Carta, by app key and status (pending: to send or retry; failed: given up).',
    labelNames: ['app', 'status'],
    read: async ({ db }) => {
      const [counts, apps] = await Promise.all([revocationCountsByApp(db), listApps(db)])
      return apps.flatMap((a) => {
        const c = counts.get(a.id) ?? { pending: 0, failed: 0 }
        return [
          { labels: { app: a.key, status: 'pending' }, value: c.pending },
          { labels: { app: a.key, status: 'failed' }, value: c.failed },
        ]
      })
    },
  },
  {
    name: 'scope_ledger_report_runs',
    help: 'Report runs recorded, by trigger (schedule, manual) and status.',
    labelNames: ['trigger', 'status'],
    read: async ({ db }) =>
      (await reportRunCounts(db)).map((r) => ({ labels: { trigger: r.trigger, status: r.status }, value: r.count })),
  },
  {
    name: 'scope_ledger_rollout_build_users',
    help: 'Active rollouts: users measured so far (done) and to measure (total); equal once built.',
    labelNames: ['rollout', 'state'],
    read: async ({ db }) =>
      (await rolloutBuildProgress(db)).flatMap((r) => [
        { labels: { rollout: String(r.id), state: 'done' }, value: r.done },
        { labels: { rollout: String(r.id), state: 'total' }, value: r.total },
      ]),
  },
  {
    name: 'scope_ledger_mail_outbox',
    help: 'Email outbox rows: queued (to send), retrying (queued after a transient SMTP failure: the server is down or refusing), failed (given up).',
    labelNames: ['status'],
    read: async ({ db, config }) => {
      const h = await mailHealth(db, config)
      return [
        { labels: { status: 'queued' }, value: h.queued },
        { labels: { status: 'retrying' }, value: h.retrying },
        { labels: { status: 'failed' }, value: h.failed },
      ]
    },
  },
  {
    name: 'scope_ledger_webhook_deliveries',
    help: 'Webhook deliveries waiting (pending: to send or retry) or given up (failed).',
    labelNames: ['status'],
    read: async ({ db }) => {
      const { deliveries } = await webhookCounts(db)
      return Object.entries(deliveries).map(([status, value]) => ({ labels: { status }, value }))
    },
  },
  {
    name: 'scope_ledger_webhook_endpoints',
    help: 'Webhook endpoints by status (disabled after sustained failure, or by an operator).',
    labelNames: ['status'],
    read: async ({ db }) => {
      const { endpoints } = await webhookCounts(db)
      return Object.entries(endpoints).map(([status, value]) => ({ labels: { status }, value }))
    },
  },
]
