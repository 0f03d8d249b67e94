// POST /admin/imports/upload: an operator uploads an import file from the dashboard (src/README.md,
// "Imports"). Multipart (RFC 7578) is parsed here only (@fastify/multipart registered in this
// plugin's scope) and streamed: fields first, then the file into an encrypted spool
// (imports/upload.ts), never into memory; the import then reads the spool. The CSRF token comes as
// the form's first field (before the file, so it is checked before a byte of the file is kept) or
// in the X-CSRF-Token header.
import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { basename, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DomainError, isDomainError } from '../../../errors.js'
import { type ImportResult, importGrants } from '../../../imports/import.js'
import { type ImportFormat, ImportFileError, type Rejection } from '../../../imports/parse.js'
import {
  findRunByRejectsKey,
  newRejectsKey,
  rejectsWriter,
  type SpooledUpload,
  spoolUpload,
  sweepStaleSpools,
  uploadFormat,
} from '../../../imports/upload.js'
import { formatTime } from '../../../time.js'
import { renderPage } from '../../render.js'
import { operatorActor } from './access.js'

/** Room for the multipart framing and the form's small fields around the file. */
const FORM_OVERHEAD_BYTES = 64 * 1024
/** Rejections shown on the page after a dry run (a real run's are all downloadable). */
const SHOWN_REJECTIONS = 20

type Settled = { result: ImportResult } | { error: unknown }

const invalid = (reason: string) => new DomainError('import.upload_invalid', reason, { reason })

/** A file importGrants refused as a whole (e.g. a CSV header without client_id) is the operator's 400. */
function refusal(err: unknown): unknown {
  return err instanceof ImportFileError ? invalid(err.message) : err
}

/**
 * The CSRF check of @fastify/csrf-protection (same secret, same token) for a body it cannot read:
 * the token read from the multipart fields is handed to it as `body._csrf`. Throws its FST_CSRF
 * error, which the error plugin turns into the "form has expired" page (403).
 */
function checkCsrf(app: FastifyInstance, request: FastifyRequest, token: string | undefined): void {
  let failure: unknown = null
  let passed = false
  const body = request.body
  request.body = token === undefined ? undefined : { _csrf: token }
  const collect = {
    send: (err: unknown) => {
      failure = err
    },
  } as unknown as FastifyReply
  app.csrfProtection.call(app, request, collect, () => {
    passed = true
  })
  request.body = body
  if (!passed) throw failure ?? new Error('CSRF check failed')
}

export default async function importUpload(app: FastifyInstance): Promise<void> {
  const { db, clock, config, cipher } = app.deps
  const maxBytes = config.importUploadMaxBytes
  const spoolDir = join(config.dataDir, 'uploads')
  // Imports still running after their answer was sent: closing the app waits for them.
  const inFlight = new Set<Promise<Settled>>()
  app.addHook('onClose', async () => {
    await Promise.allSettled([...inFlight])
  })
  await app.register(multipart, {
    limits: { fileSize: maxBytes, files: 1, fields: 10, fieldSize: 1000, parts: 12, headerPairs: 50 },
  })

  app.post('/imports/upload', { config: { access: 'operator' } }, async (request, reply) => {
    if (!request.isMultipart()) throw invalid('Send the file with the upload form (multipart/form-data).')
    // A declared length past the limit is refused before a byte is read.
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > maxBytes + FORM_OVERHEAD_BYTES) {
      reply.header('connection', 'close')
      throw new DomainError('import.upload_too_large', `declared ${declared} bytes`, { maxBytes })
    }
    const fields = new Map<string, string>()
    let csrfChecked = false
    let spooled: SpooledUpload | null = null
    let fileName = ''
    try {
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          fields.set(part.fieldname, String(part.value))
          continue
        }
        if (!csrfChecked) {
          checkCsrf(app, request, fields.get('_csrf'))
          csrfChecked = true
        }
        const name = basename(part.filename ?? '').slice(0, 200)
        // A form sent without a chosen file still carries an empty file part.
        if (part.fieldname !== 'file' || !name || spooled) {
          part.file.resume()
          continue
        }
        fileName = name
        await sweepStaleSpools(spoolDir, Date.now())
        spooled = await spoolUpload(part.file, spoolDir, maxBytes)
        if (part.file.truncated) throw new DomainError('import.upload_too_large', 'file size limit', { maxBytes })
      }
    } catch (err) {
      await spooled?.remove()
      const code = (err as { code?: string }).code ?? ''
      if (isDomainError(err) || code.startsWith('FST_CSRF')) throw err
      if (code === 'FST_REQ_FILE_TOO_LARGE')
        throw new DomainError('import.upload_too_large', 'file size limit', { maxBytes })
      if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT')
        throw invalid('The form carries more than one file or too many fields: upload one file.')
      request.log.warn({ err: (err as Error).message }, 'import upload interrupted')
      throw invalid('The upload stopped before the whole file arrived.')
    }
    if (!csrfChecked) checkCsrf(app, request, fields.get('_csrf'))
    if (!spooled) throw invalid('Choose a file to import.')

    let handedOff = false
    try {
      const chosen = fields.get('format') || 'auto'
      if (chosen !== 'auto' && chosen !== 'jsonl' && chosen !== 'csv')
        throw invalid('The format must be JSON Lines or CSV (or left to follow from the file name).')
      const format = uploadFormat(fileName, chosen === 'auto' ? null : (chosen as ImportFormat), spooled)
      const dryRun = fields.get('dry_run') === 'on' || fields.get('dry_run') === '1'
      const actor = operatorActor(request)
      const log = request.log
      const key = dryRun ? null : newRejectsKey()
      const rejects = key ? rejectsWriter(db, key) : null
      const shown: Rejection[] = []
      const upload = spooled
      log.info({ file: fileName, bytes: upload.bytes, format, dryRun }, 'import uploaded')
      // The import owns the spool from here on, and removes it when it ends.
      const settled: Promise<Settled> = (async () => {
        try {
          return await importGrants({ db, cipher, clock, log }, upload.open(), {
            format,
            fileName,
            actor,
            dryRun,
            rejectsFile: key,
            onRejection: async (r) => {
              if (shown.length < SHOWN_REJECTIONS) shown.push(r)
              await rejects?.add(r)
            },
          })
        } finally {
          await rejects?.flush()
          await upload.remove()
        }
      })().then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      )
      handedOff = true
      inFlight.add(settled)
      void settled.finally(() => inFlight.delete(settled))

      if (dryRun) {
        const outcome = await settled
        if ('error' in outcome) throw refusal(outcome.error)
        const { result } = outcome
        return renderPage(request, reply, 'admin/import-run', {
          title: 'Dry run',
          dryRun: true,
          run: {
            id: null,
            fileName,
            format,
            actor,
            state: 'done',
            startedAt: clock.now() - result.ms,
            seconds: (result.ms / 1000).toFixed(1),
            created: result.created,
            superseded: result.superseded,
            unchanged: result.unchanged,
            rejected: result.rejected,
            lines: result.lines,
            error: null,
          },
          rejections: shown,
          rejectsHref: null,
          formatTime,
        })
      }

      // A small file is done within the wait and its page shows the summary; a large one goes on in
      // the background and its page shows the counters moving (no proxy timeout, no lost answer).
      let outcome: Settled | null = null
      void settled.then((o) => {
        outcome = o
      })
      const deadline = Date.now() + config.importUploadWaitMs
      for (;;) {
        await Promise.race([settled, sleep(100)])
        if (outcome) break
        if (Date.now() < deadline) continue
        const run = await findRunByRejectsKey(db, key!)
        if (run) return reply.redirect(`/admin/imports/runs/${run.id}`, 303)
      }
      const done = outcome as Settled
      if ('error' in done) {
        // A run that had started shows its failure on its page; a file refused up front is a 400.
        const run = done.error instanceof ImportFileError ? undefined : await findRunByRejectsKey(db, key!)
        if (run) return reply.redirect(`/admin/imports/runs/${run.id}`, 303)
        throw refusal(done.error)
      }
      return reply.redirect(`/admin/imports/runs/${done.result.runId}`, 303)
    } finally {
      if (!handedOff) await spooled.remove()
    }
  })
}
