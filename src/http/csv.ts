// Streaming a CSV download. The first chunk is produced before the response starts, so a failure
// up to then is an ordinary error page; a failure after it aborts the connection (no final chunk),
// so the client sees an incomplete transfer rather than a file that merely looks short, and the
// error is logged. RFC 9110 §6.1 / RFC 9112 §7.1: a chunked body is complete only with its last chunk.
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'

export type CsvWriter = (chunk: string) => Promise<void>

export async function sendCsv<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  fileName: string,
  produce: (write: CsvWriter) => Promise<T>,
  onDone: (result: T) => void,
): Promise<FastifyReply> {
  const out = new PassThrough()
  let started: () => void = () => {}
  const firstChunk = new Promise<void>((resolve) => {
    started = resolve
  })
  const write: CsvWriter = async (chunk) => {
    started()
    if (!out.write(chunk)) await once(out, 'drain')
  }
  const production = produce(write)
  // Before the first chunk, a failure throws here: the error plugin answers with a page.
  await Promise.race([firstChunk, production])
  production.then(
    (result) => {
      out.end()
      onDone(result)
    },
    (err: unknown) => {
      request.log.error({ err, file: fileName }, 'CSV export failed mid-stream; the download was aborted')
      out.destroy(err instanceof Error ? err : new Error(String(err)))
    },
  )
  return reply
    .type('text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${fileName}"`)
    .header('cache-control', 'no-store')
    .send(out)
}
