// Placeholder route module; replaced by its real implementation.
import type { FastifyInstance } from 'fastify'

export default async function reauthLinkRoutes(_app: FastifyInstance): Promise<void> {}
