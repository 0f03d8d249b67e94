// Placeholder route module; replaced by its real implementation.
import type { FastifyInstance } from 'fastify'

export default async function lifecycleRoutes(_app: FastifyInstance): Promise<void> {}
