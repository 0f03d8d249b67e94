// /api/v1/rollouts: the list, one rollout's coverage summary (from the delta-kept counters), and
// its lacking list with the dashboard's filters and keyset cursor pagination.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { DomainError } from '../../../errors.js'
import { rolloutSummary } from '../../../rollouts/coverage.js'
import { lackingFilter, listLacking } from '../../../rollouts/lacking.js'
import { findRollout, listRollouts } from '../../../rollouts/rollouts.js'
import { parseScopes } from '../../../scopes.js'
import { IdParams } from '../../schemas.js'
import type { ApiRouteConfig } from './auth.js'
import { problems } from './problem.js'
import { LackingPageSchema, LackingQuery, RolloutSchema, RolloutSummarySchema } from './schemas.js'

interface RolloutFields {
  id: number
  name: string
  status: string
  app_key: string
  app_name: string
  required_scopes: string
  build_status: string
  created_at: number
}

function rolloutView(r: RolloutFields, counts: { members: number; covered: number }) {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    app: { key: r.app_key, name: r.app_name },
    requiredScopes: parseScopes(r.required_scopes),
    buildStatus: r.build_status,
    createdAt: Number(r.created_at),
    members: counts.members,
    covered: counts.covered,
  }
}

const rollouts: FastifyPluginAsyncTypebox<{ route: ApiRouteConfig }> = async (app, { route }) => {
  const { db } = app.deps

  app.get(
    '/rollouts',
    {
      config: route('read'),
      schema: {
        summary: 'Every rollout, newest first, with its member and covered counts',
        tags: ['rollouts'],
        response: { 200: Type.Object({ items: Type.Array(RolloutSchema) }), ...problems(403) },
      },
    },
    async () => ({ items: (await listRollouts(db)).map((r) => rolloutView(r, r)) }),
  )

  app.get(
    '/rollouts/:id',
    {
      config: route('read'),
      schema: {
        summary: "A rollout's coverage summary",
        tags: ['rollouts'],
        params: IdParams,
        response: { 200: RolloutSummarySchema, ...problems(403, 404) },
      },
    },
    async (request) => {
      const rolloutId = request.params.id
      const rollout = await findRollout(db, rolloutId)
      if (!rollout) throw new DomainError('rollout.not_found', `There is no rollout ${rolloutId}.`, { rolloutId })
      const summary = await rolloutSummary(db, rolloutId, rollout.required_scopes)
      return {
        ...rolloutView(rollout, summary),
        lacking: summary.lacking,
        reconnect: summary.reconnect,
        coveragePct: summary.coveragePct,
        perScope: summary.perScope,
      }
    },
  )

  app.get(
    '/rollouts/:id/lacking',
    {
      config: route('read'),
      schema: {
        summary: 'Members needing action (lacking scopes or reconnect), one page at a time',
        description:
          'Filters as on the rollout page: scope (a required scope they miss), app (id of their current app), q (Carta user id or email prefix), sort (user | oldest | newest). Follow nextCursor until it is null.',
        tags: ['rollouts'],
        params: IdParams,
        querystring: LackingQuery,
        response: { 200: LackingPageSchema, ...problems(400, 403, 404) },
      },
    },
    async (request) => {
      const { cursor, limit, ...filterInput } = request.query
      const page = await listLacking(db, request.params.id, lackingFilter(filterInput), {
        ...(cursor !== undefined ? { after: cursor } : {}),
        limit: limit ?? 100,
      })
      return {
        items: page.rows.map((r) => ({
          cartaUserId: r.cartaUserId,
          externalUserId: r.externalUserId,
          email: r.email,
          state: r.state,
          reason: r.reason,
          missingScopes: r.missing,
          grantedScopes: r.granted,
          app: r.appKey,
          authorizedAt: Number(r.authorizedAt),
        })),
        nextCursor: page.nextCursor,
      }
    },
  )
}

export default rollouts
