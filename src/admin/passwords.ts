// Operator password hashing with scrypt (node:crypto; RFC 7914). Stored as
// `scrypt$N$r$p$salt$hash` (base64url) so the cost can be raised later without breaking old hashes.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

const N = 16384
const R = 8
const P = 1
const KEY_LENGTH = 32
const SALT_LENGTH = 16
export const MIN_PASSWORD_LENGTH = 12

function derive(password: string, salt: Buffer, n: number, r: number, p: number, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, length, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    )
  })
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH)
  const key = await derive(password, salt, N, R, P, KEY_LENGTH)
  return ['scrypt', N, R, P, salt.toString('base64url'), key.toString('base64url')].join('$')
}

/** Constant-time check of a password against a stored hash; false for malformed hashes. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  if (![n, r, p].every((v) => Number.isSafeInteger(v) && v > 0) || n > 1 << 20) return false
  const salt = Buffer.from(parts[4]!, 'base64url')
  const expected = Buffer.from(parts[5]!, 'base64url')
  if (expected.length === 0) return false
  const actual = await derive(password, salt, n, r, p, expected.length)
  return timingSafeEqual(actual, expected)
}

/** A random password for generated accounts: 20 base64url characters (120 bits). */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url')
}

/** A throwaway hash so an unknown username costs the same scrypt work as a known one. */
let dummyHash: Promise<string> | null = null
export function timingDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(generatePassword())
  return dummyHash
}
