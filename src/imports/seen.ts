// The first line of the file naming each Carta user id, for the duplicate rule (a later line for the
// same user is refused). A Map of 1,000,000 strings costs ~120 MB of heap and slows every full GC;
// this table keeps a 96-bit digest (SHA-1, truncated) and the line number per user in typed
// arrays: 16 bytes a slot at most half full, 32 MB for 1,000,000 users. Two different ids share a
// digest with probability ~n²/2⁹⁷ (6e-18 for a million users), far below any hardware fault.
import { createHash } from 'node:crypto'

/** 32-bit words of digest per user. */
const WORDS = 3

export class SeenUsers {
  private keys = new Uint32Array(WORDS * 1024)
  private lines = new Uint32Array(1024)
  private size = 0

  /** The line that first named `cartaUserId`, or undefined (and `line` is recorded). */
  firstLine(cartaUserId: string, line: number): number | undefined {
    const digest = createHash('sha1').update(cartaUserId).digest()
    const k = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8)] as const
    const slot = this.find(this.keys, this.lines, k)
    if (this.lines[slot] !== 0) return this.lines[slot]
    this.keys.set(k, slot * WORDS)
    this.lines[slot] = line
    this.size += 1
    if (this.size * 2 > this.lines.length) this.grow()
    return undefined
  }

  /** Open addressing, linear probing; line 0 marks an empty slot (lines count from 1). */
  private find(keys: Uint32Array, lines: Uint32Array, k: readonly [number, number, number]): number {
    const mask = lines.length - 1
    let slot = k[0] & mask
    while (lines[slot] !== 0) {
      const at = slot * WORDS
      if (keys[at] === k[0] && keys[at + 1] === k[1] && keys[at + 2] === k[2]) return slot
      slot = (slot + 1) & mask
    }
    return slot
  }

  private grow(): void {
    const keys = new Uint32Array(this.keys.length * 2)
    const lines = new Uint32Array(this.lines.length * 2)
    for (let slot = 0; slot < this.lines.length; slot++) {
      if (this.lines[slot] === 0) continue
      const at = slot * WORDS
      const k = [this.keys[at]!, this.keys[at + 1]!, this.keys[at + 2]!] as const
      const to = this.find(keys, lines, k)
      keys.set(k, to * WORDS)
      lines[to] = this.lines[slot]!
    }
    this.keys = keys
    this.lines = lines
  }
}
