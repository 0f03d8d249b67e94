// `api-key create|list|revoke`: the key alone on stdout (and it works against the API), messages
// on stderr, stored hashed, bad input refused with the usage.
import t from 'tap'
import { apiKeyCommand } from '../../src/cli/api-key.js'
import { hashKey } from '../../src/api/keys.js'
import { openDatabase } from '../../src/db/index.js'
import { startTestApp } from '../helpers/app.js'
import { api } from '../http/routes/api/helpers.js'

t.test('api-key create prints the key alone on stdout; list and revoke', async (t) => {
  const app = await startTestApp(t)
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const out: string[] = []
  const err: string[] = []
  const log = console.log
  const error = console.error
  console.log = (...args: unknown[]) => void out.push(args.join(' '))
  console.error = (...args: unknown[]) => void err.push(args.join(' '))
  t.teardown(() => {
    console.log = log
    console.error = error
  })

  t.equal(await apiKeyCommand(['create', 'billing', '--permissions', 'read,tokens'], open), 0)
  t.equal(out.length, 1, 'one line on stdout')
  const key = out[0]!
  t.match(key, /^slk_[A-Za-z0-9_-]{43}$/, 'the key alone')
  t.match(err.at(-1), 'Created API key 1 "billing" (read, tokens)')
  const row = await app.db.selectFrom('api_keys').selectAll().executeTakeFirstOrThrow()
  t.equal(row.key_hash, hashKey(key), 'stored as its hash')
  t.notOk(JSON.stringify(row).includes(key), 'never in clear')
  t.equal((await api(app, key, 'GET', '/api/v1/rollouts')).status, 200, 'the key works')

  out.length = 0
  t.equal(await apiKeyCommand(['list'], open), 0)
  t.match(out[0], /^1\tbilling\tslk_.{6}…\tread,tokens\tcreated .*\tlast used .*\tactive$/)
  t.notOk(out.join('\n').includes(key), 'list never shows the key')

  t.equal(await apiKeyCommand(['revoke', '1'], open), 0)
  t.equal((await api(app, key, 'GET', '/api/v1/rollouts')).status, 401, 'revoked at once')
  t.equal(await apiKeyCommand(['revoke', '7'], open), 1, 'unknown key')
  t.equal(await apiKeyCommand(['create', 'x', '--permissions', 'read,root'], open), 1, 'unknown permission')
  t.match(err.at(-1), 'Unknown permission "root"')
  t.equal(await apiKeyCommand(['create'], open), 2, 'no name: usage')
  t.equal(await apiKeyCommand(['revoke', 'abc'], open), 2)
  t.equal(await apiKeyCommand(['revoke', String(2 ** 31)], open), 2, 'id past integer')
  t.equal(await apiKeyCommand(['create', 'x', '--bogus'], open), 2)
  t.equal(
    await app.db
      .selectFrom('api_keys')
      .select('id')
      .execute()
      .then((r) => r.length),
    1,
    'nothing else written',
  )
})
