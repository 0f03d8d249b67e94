// `npm run cli -- operator create <username> [--role R]` / `operator reset-password <username>` /
// `operator set-role <username> --role R`. The password is read from stdin when piped (first
// line), otherwise generated and printed once. Roles: viewer, operator, admin (default admin, as
// every account was before roles).
import { systemClock } from '../clock.js'
import { openRuntime } from '../runtime.js'
import { isDomainError } from '../errors.js'
import { createOperator, resetOperatorPassword, setOperatorRole, validateRole } from '../admin/operators.js'
import { generatePassword } from '../admin/passwords.js'
import type { OperatorRole } from '../admin/tables.js'

export const operatorUsage =
  'Usage: npm run cli -- operator <create|reset-password|set-role> <username> [--role viewer|operator|admin]   (create: pipe a password on stdin, or one is generated)'

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!.trim()
}

/** `args` without `--role R` / `--role=R`, and R (validated), or a message. */
function takeRole(args: string[]): { rest: string[]; role?: OperatorRole } | string {
  const rest: string[] = []
  let role: OperatorRole | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const value = arg === '--role' ? args[++i] : arg.startsWith('--role=') ? arg.slice('--role='.length) : null
    if (value === null) {
      rest.push(arg)
      continue
    }
    if (value === undefined) return '--role needs a value: viewer, operator or admin.'
    try {
      role = validateRole(value)
    } catch (err) {
      return (err as Error).message
    }
  }
  return role === undefined ? { rest } : { rest, role }
}

export async function operatorCommand(args: string[]): Promise<number> {
  const parsed = takeRole(args)
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n${operatorUsage}`)
    return 2
  }
  const [action, username] = parsed.rest
  const known = action === 'create' || action === 'reset-password' || action === 'set-role'
  if (
    !known ||
    !username ||
    parsed.rest.length > 2 ||
    (action === 'set-role' && !parsed.role) ||
    (action === 'reset-password' && parsed.role)
  ) {
    console.error(operatorUsage)
    return 2
  }
  const name = username.trim().toLowerCase()
  const piped = action === 'set-role' ? '' : await readStdin()
  const password = piped || generatePassword()
  const { db } = await openRuntime()
  try {
    if (action === 'create') await createOperator(db, username, password, systemClock.now(), parsed.role ?? 'admin')
    else if (action === 'reset-password') await resetOperatorPassword(db, username, password)
    else await setOperatorRole(db, username, parsed.role!, systemClock.now())
  } catch (err) {
    if (isDomainError(err, 'operator.invalid')) {
      console.error(err.message)
      return 1
    }
    throw err
  } finally {
    await db.destroy()
  }
  if (action === 'set-role') {
    console.log(`Operator "${name}" now has the role ${parsed.role}.`)
    return 0
  }
  const verb =
    action === 'create' ? `Created operator (role ${parsed.role ?? 'admin'})` : 'Reset the password of operator'
  if (piped) console.log(`${verb} "${name}" with the password from stdin.`)
  else console.log(`${verb} "${name}".\nPassword (shown once, store it now): ${password}`)
  return 0
}
