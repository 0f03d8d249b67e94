// `npm run cli -- operator create <username>` / `operator reset-password <username>`.
// The password is read from stdin when piped (first line), otherwise generated and printed once.
import { systemClock } from '../clock.js'
import { openRuntime } from '../runtime.js'
import { isDomainError } from '../errors.js'
import { createOperator, resetOperatorPassword } from '../admin/operators.js'
import { generatePassword } from '../admin/passwords.js'

export const operatorUsage =
  'Usage: npm run cli -- operator <create|reset-password> <username>   (pipe a password on stdin, or one is generated)'

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!.trim()
}

export async function operatorCommand(args: string[]): Promise<number> {
  const [action, username] = args
  if ((action !== 'create' && action !== 'reset-password') || !username || args.length > 2) {
    console.error(operatorUsage)
    return 2
  }
  const piped = await readStdin()
  const password = piped || generatePassword()
  const { db } = await openRuntime()
  try {
    if (action === 'create') await createOperator(db, username, password, systemClock.now())
    else await resetOperatorPassword(db, username, password)
  } catch (err) {
    if (isDomainError(err, 'operator.invalid')) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
  const verb = action === 'create' ? 'Created operator' : 'Reset the password of operator'
  if (piped) console.log(`${verb} "${username.trim().toLowerCase()}" with the password from stdin.`)
  else console.log(`${verb} "${username.trim().toLowerCase()}".\nPassword (shown once, store it now): ${password}`)
  return 0
}
