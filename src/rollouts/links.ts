// Reauthorization links. (Contract; implemented by the links module.)
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'

/**
 * Marks the link used by `grantId` if it is still unused and unexpired; false otherwise.
 * Called inside the callback's grant transaction: a false answer rolls the whole grant back.
 */
export async function consumeLink(_db: Kysely<Database>, _linkId: number, _grantId: number, _now: number): Promise<boolean> {
  return true
}
