// Options of a CLI command, parsed the same way everywhere: positionals allowed, and an unknown or
// malformed option prints the problem and the command's usage on stderr (exit status 2 is the caller's).
import { type ParseArgsConfig, parseArgs } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

/** The parsed arguments, or null after printing why they could not be parsed. */
export function parseOptions<const O extends Options>(args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, allowPositionals: true as const, options })
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`)
    return null
  }
}
