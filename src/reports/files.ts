// Writing report files atomically: every file goes to a temp name in the same directory, and only
// when all are written are they renamed into place (rename is atomic within one file system).
// On any failure the temps, and any file already renamed, are removed: nothing half-written.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export class ReportDirError extends Error {
  constructor(dir: string, cause: unknown) {
    const reason = (cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? String(cause)
    super(`Cannot write reports to directory ${dir} (${reason}). Set REPORTS_DIR to a writable directory.`)
    this.name = 'ReportDirError'
  }
}

/** Writes `files` (name → contents) into `dir`; all or nothing. */
export async function writeFilesAtomically(dir: string, files: Record<string, string>): Promise<void> {
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const temps: string[] = []
  const placed: string[] = []
  try {
    await mkdir(dir, { recursive: true })
    for (const [name, contents] of Object.entries(files)) {
      const temp = join(dir, `.${name}${suffix}`)
      temps.push(temp)
      await writeFile(temp, contents, { flag: 'wx', mode: 0o640 })
    }
    for (const [i, name] of Object.keys(files).entries()) {
      await rename(temps[i]!, join(dir, name))
      placed.push(join(dir, name))
    }
  } catch (err) {
    await Promise.all([...temps, ...placed].map((p) => rm(p, { force: true }).catch(() => {})))
    throw new ReportDirError(dir, err)
  }
}

/** Removes report files (used when the run's database write fails after the files landed). */
export async function removeFiles(dir: string, names: string[]): Promise<void> {
  await Promise.all(names.map((n) => rm(join(dir, n), { force: true }).catch(() => {})))
}

/** A stored report file, or null when it is gone (the caller re-renders it from the database). */
export async function readReportFile(dir: string, name: string): Promise<string | null> {
  if (!/^coverage-[\w-]+\.(json|csv|html)$/.test(name)) return null
  try {
    return await readFile(join(dir, name), 'utf8')
  } catch {
    return null
  }
}
