import { randomBytes } from 'node:crypto'
import t from 'tap'
import { TokenCipher } from '../../src/grants/token-cipher.js'

const k1 = randomBytes(32)
const k2 = randomBytes(32)

t.test('seals with the current key and opens with any configured key', async (t) => {
  const old = new TokenCipher({ currentKeyId: 'k1', keys: new Map([['k1', k1]]) })
  const sealed = old.seal('access-token-value')
  t.equal(sealed.keyId, 'k1')
  t.notMatch(sealed.value, /access-token-value/)
  t.not(old.seal('access-token-value').value, sealed.value, 'a fresh IV each time')

  const rotated = new TokenCipher({
    currentKeyId: 'k2',
    keys: new Map([
      ['k2', k2],
      ['k1', k1],
    ]),
  })
  t.equal(rotated.open(sealed), 'access-token-value', 'old key id still decrypts after rotation')
  t.equal(rotated.seal('x').keyId, 'k2')
})

t.test('tampering and unknown keys fail loudly', async (t) => {
  const cipher = new TokenCipher({ currentKeyId: 'k1', keys: new Map([['k1', k1]]) })
  const sealed = cipher.seal('secret')
  const raw = Buffer.from(sealed.value, 'base64url')
  raw[raw.length - 1]! ^= 1
  t.throws(() => cipher.open({ keyId: 'k1', value: raw.toString('base64url') }), 'GCM tag check fails')
  t.throws(() => cipher.open({ keyId: 'gone', value: sealed.value }), /No token encryption key with id "gone"/)
})
