// The first line of the file naming each Carta user id, for the duplicate rule (a later line for the
// same user is refused). A Map of 1,000,000 strings costs ~120 MB of heap and slows every full GC;
// this table keeps a 128-bit digest (SHA-1, truncated) and the line number per user in typed
// arrays: 20 bytes a slot at most half full, ~40 MB for 1,000,000 users. Two different ids share a
// digest with probability ~n²/2¹²⁹ (1e-27 for a million users), far below any hardware fault.
import { createHash } from 'node:crypto'

export class SeenUsers {
  private keys = new Uint32Array(4 * 1024)
  private lines = new Uint32Array(1024)
  private size = 0

  /** The line that first named `cartaUserId`, or undefined (and `line` is recorded). */
  firstLine(cartaUserId: string, line: number): number | undefined {
    const digest = createHash('sha1').update(cartaUserId).digest()
    const k = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)] as const
    const slot = this.find(this.keys, this.lines, k)
    if (this.lines[slot] !== 0) return this.lines[slot]
    this.keys.set(k, slot * 4)
    this.lines[slot] = line
    this.size += 1
    if (this.size * 2 > this.lines.length) this.grow()
    return undefined
  }

  /** Open addressing, linear probing; line 0 marks an empty slot (lines count from 1). */
  private find(keys: Uint32Array, lines: Uint32Array, k: readonly [number, number, number, number]): number {
    const mask = lines.length - 1
    let slot = k[0] & mask
    while (lines[slot] !== 0) {
      const at = slot * 4
      if (keys[at] === k[0] && keys[at + 1] === k[1] && keys[at + 2] === k[2] && keys[at + 3] === k[3]) return slot
      slot = (slot + 1) & mask
    }
    return slot
  }

  private grow(): void {
    const keys = new Uint32Array(this.keys.length * 2)
    const lines = new Uint32Array(this.lines.length * 2)
    for (let slot = 0; slot < this.lines.length; slot++) {
      if (this.lines[slot] === 0) continue
      const at = slot * 4
      const k = [this.keys[at]!, this.keys[at + 1]!, this.keys[at + 2]!, this.keys[at + 3]!] as const
      const to = this.find(keys, lines, k)
      keys.set(k, to * 4)
      lines[to] = this.lines[slot]!
    }
    this.keys = keys
    this.lines = lines
  }
}
