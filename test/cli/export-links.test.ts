// `export-links`: the CSV export from the command line, same rows and links as the dashboard's.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { openDatabase } from '../../src/db/index.js'
import { exportLinksCommand } from '../../src/cli/export-links.js'
import { linkUrl } from '../../src/links/links.js'
import { startTestApp } from '../helpers/app.js'
import { auditRows, createMember, createRollout } from '../links/fixtures.js'

t.test('export-links writes the CSV, issues missing links, and refuses bad input', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const ann = await createMember(
    app.app.deps,
    {
      cartaUserId: 'c-ann',
      email: 'ann@example.com',
      appKey: 'production-v1',
      granted: ['read_issuer_info', 'read_user_info'],
    },
    clock.now(),
  )
  await createMember(
    app.app.deps,
    { cartaUserId: 'c-dan', email: 'dan@example.com', appKey: 'production-v2', granted: rollout.scopes },
    clock.now(),
  )
  // The command closes the database it is given: hand it its own connection, as the CLI opens one.
  const open = async () => ({
    config: app.config,
    db: await openDatabase(
      app.config.database,
      app.config.database.kind === 'postgres' ? { searchPath: app.config.database.searchPath } : {},
    ),
  })
  const errors: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => void errors.push(args.join(' '))
  t.teardown(() => {
    console.error = original
  })

  const out = join(app.dataDir, 'links.csv')
  t.equal(await exportLinksCommand([String(rollout.id), '--out', out], open), 0)
  const lines = readFileSync(out, 'utf8').split('\r\n')
  const link = await app.db.selectFrom('reauth_links').selectAll().executeTakeFirstOrThrow()
  t.equal(link.user_id, ann, 'a link was issued for the lacking user only')
  t.equal(link.issued_by, 'cli')
  t.same(lines, [
    'user_id,carta_user_id,email,missing_scopes,link_url,expires_at',
    `${ann},c-ann,ann@example.com,read_issuer_capitalizationtablesummary,${linkUrl({ publicUrl: app.url, secret: app.config.linkSigningSecret }, link)},${new Date(link.expires_at).toISOString()}`,
    '',
  ])
  t.match(errors.at(-1), 'Exported 1 users (1 new links, 0 reused)')
  t.match(await auditRows(app.db, 'links.exported'), [{ actor: 'cli', details: { matched: 1, issued: 1 } }])

  t.equal(await exportLinksCommand([], open), 2, 'no rollout id: usage')
  t.equal(await exportLinksCommand(['abc'], open), 2)
  t.equal(await exportLinksCommand(['1', '--bogus'], open), 2, 'unknown option: usage')
  t.equal(await exportLinksCommand(['999', '--out', join(app.dataDir, 'x.csv')], open), 1, 'unknown rollout')
  t.match(errors.at(-1), 'There is no rollout 999')
  t.notOk(existsSync(join(app.dataDir, 'x.csv')), 'a refused export leaves no file behind')
})
