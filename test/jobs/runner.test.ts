// The job runner (src/jobs/runner.ts) on its own: passes never overlap, a kick during a pass makes
// exactly one more, kicks do nothing until started, a failing kicked pass is logged and the runner
// carries on, and stop() waits for work in flight.
import t from 'tap'
import { type Job, JobRunner } from '../../src/jobs/runner.js'
import type { Logger } from '../../src/log.js'

function recorder() {
  const lines: Array<{ level: string; obj: object; msg?: string }> = []
  const log: Logger = {
    info: (obj, msg) => void lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => void lines.push({ level: 'error', obj, msg }),
  }
  return { lines, log }
}

/** A job whose passes wait until released, counting how many ran and how many overlapped. */
function gatedJob() {
  let active = 0
  const state = { passes: 0, maxActive: 0, release: () => {} }
  let gate = Promise.resolve()
  const job: Job<number> = {
    run: async () => {
      active++
      state.maxActive = Math.max(state.maxActive, active)
      await gate
      active--
      return ++state.passes
    },
  }
  const close = () => {
    gate = new Promise<void>((resolve) => {
      state.release = resolve
    })
  }
  return { job, state, close }
}

t.test('run() by hand: results, no overlap, one follow-up pass for all callers during a pass', async (t) => {
  const { job, state, close } = gatedJob()
  const runner = new JobRunner({ gated: job }, () => recorder().log)
  t.equal(await runner.run('gated'), 1, 'a pass resolves with its result')
  close()
  const first = runner.run('gated')
  const second = runner.run('gated')
  const third = runner.run('gated')
  state.release()
  close()
  await new Promise((resolve) => setTimeout(resolve, 10))
  state.release()
  t.same(await Promise.all([first, second, third]), [2, 3, 3], 'callers during a pass share the next one')
  t.equal(state.maxActive, 1, 'never two passes at once')
  await runner.stop()
  t.equal(await runner.run('gated'), null, 'nothing runs once stopped')
})

t.test('kick: ignored until started, logged when it fails, stop waits for the pass in flight', async (t) => {
  const { lines, log } = recorder()
  let calls = 0
  let finished = false
  const runner = new JobRunner(
    {
      flaky: {
        run: async () => {
          calls++
          if (calls === 1) throw new Error('boom')
          await new Promise((resolve) => setTimeout(resolve, 30))
          finished = true
        },
      },
    },
    () => log,
  )
  runner.kick('flaky')
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(calls, 0, 'not started: a kick does nothing')
  t.notOk(runner.started)
  await runner.start()
  t.ok(runner.started)
  runner.kick('flaky')
  await runner.idle()
  t.equal(calls, 1)
  t.match(lines, [{ level: 'error', msg: 'job pass failed' }], 'the failure is logged, not thrown')
  runner.kick('flaky')
  await runner.stop()
  t.ok(finished, 'stop() waited for the pass in flight')
})
