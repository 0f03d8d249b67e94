// Server-rendered pages: Eta templates in views/, one layout, and one way to show an error page.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { roleAllows } from '../admin/operators.js'
import type { OperatorRole } from '../admin/tables.js'
import { eta } from '../views.js'

/** Data every page's layout may read. */
export interface PageData {
  title: string
  /** Set true on pages that render a POST form: provides `it.csrfToken` (creates a session). */
  csrf?: boolean
  [key: string]: unknown
}

/**
 * Renders `views/<view>.eta` inside the layout. The layout shows the operator nav when the
 * session belongs to an operator; `csrfToken` is provided to pages that set `csrf: true`.
 */
export async function renderPage(
  request: FastifyRequest,
  reply: FastifyReply,
  view: string,
  data: PageData,
  statusCode = 200,
): Promise<FastifyReply> {
  const session = request.session as { operatorId?: number; operatorName?: string } | undefined
  const operator = request.operator ?? null
  const html = await eta.renderAsync(view, {
    ...data,
    operatorName: session?.operatorId ? (session.operatorName ?? 'operator') : null,
    operatorRole: operator?.role ?? null,
    // Views offer only the actions the operator's role allows (the guard refuses the others).
    can: (needed: OperatorRole) => (operator ? roleAllows(operator.role, needed) : false),
    path: request.url,
    // Operator pages always carry the sign-out form; other pages only when they ask.
    csrfToken: data.csrf || session?.operatorId ? await csrfTokenFor(reply) : null,
  })
  return reply.code(statusCode).type('text/html; charset=utf-8').send(html)
}

async function csrfTokenFor(reply: FastifyReply): Promise<string | null> {
  const generate = (reply as unknown as { generateCsrf?: () => string | Promise<string> }).generateCsrf
  if (!generate || !reply.request.session) return null
  return await generate.call(reply)
}

/** Renders the error page. Used by the error plugin; routes throw a DomainError instead. */
export async function renderError(
  request: FastifyRequest,
  reply: FastifyReply,
  statusCode: number,
  title: string,
  message: string,
  extra: Record<string, unknown> = {},
): Promise<FastifyReply> {
  return renderPage(request, reply, 'error', { title, message, statusCode, ...extra }, statusCode)
}

/**
 * For pages that show a live reauthorization link or token: no copy in any cache, shared or
 * private (RFC 9111 §5.2.2.5), so it is not replayed from a proxy or the back button of a shared
 * machine.
 */
export function noStore(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store')
}
