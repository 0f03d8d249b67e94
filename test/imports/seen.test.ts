// The duplicate-user table of an import: the first line naming a user is remembered across growth,
// a later line gets it back, distinct ids never collide.
import t from 'tap'
import { SeenUsers } from '../../src/imports/seen.js'

t.test('first line per user, through many growths', async (t) => {
  const seen = new SeenUsers()
  const n = 200_000
  let collisions = 0
  for (let i = 1; i <= n; i++) if (seen.firstLine(`user-${i}`, i) !== undefined) collisions += 1
  t.equal(collisions, 0, 'distinct ids are all new')
  let wrong = 0
  for (let i = 1; i <= n; i += 997) if (seen.firstLine(`user-${i}`, n + i) !== i) wrong += 1
  t.equal(wrong, 0, 'a later line gets the first line back')
  t.equal(seen.firstLine('user-1', 5), 1, 'still the first line after a repeat')
  t.equal(seen.firstLine('', n + 1), undefined)
  t.equal(seen.firstLine('', n + 2), n + 1)
})
