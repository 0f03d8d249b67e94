// Time comes from an injectable clock so tests (and the sandbox's "move the clock" control) can
// move it; production uses the system clock.
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock tests can set and advance. */
export class ManualClock implements Clock {
  constructor(private current = Date.now()) {}
  now(): number {
    return this.current
  }
  set(value: number): void {
    this.current = value
  }
  advance(ms: number): void {
    this.current += ms
  }
}
