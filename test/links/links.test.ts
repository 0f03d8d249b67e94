// The link module without HTTP: signing, verification, expiry, single use and bulk issue.
import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import {
  consumeLink,
  issueLink,
  issueLinksBulk,
  latestLinks,
  linkContextFrom,
  newNonce,
  resolveLink,
  signLinkToken,
  verifyLinkToken,
} from '../../src/links/links.js'
import { lackingFilter } from '../../src/rollouts/lacking.js'
import { startTestApp } from '../helpers/app.js'
import { appId, auditRows, createMember, createRollout } from './fixtures.js'

const SECRET = 'a'.repeat(40)
const DAY = 24 * 60 * 60 * 1000

/** Replace the character at `i` by a different base64url character. */
function flip(token: string, i: number): string {
  const c = token[i]!
  return token.slice(0, i) + (c === 'A' ? 'B' : 'A') + token.slice(i + 1)
}

t.test('sign and verify round-trip; tampering anywhere fails', async (t) => {
  const nonce = newNonce()
  const token = signLinkToken(SECRET, 42, nonce)
  t.match(token, /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/)
  t.same(verifyLinkToken(SECRET, token), { linkId: 42, nonce })
  t.equal(verifyLinkToken('b'.repeat(40), token), null, 'another secret does not verify')
  // Every single-character change, in the payload and in the MAC (including the MAC's last
  // character, whose two low bits base64url decoding would ignore).
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '.') continue
    if (verifyLinkToken(SECRET, flip(token, i)) !== null) t.fail(`flipping char ${i} still verifies`)
  }
  t.equal(verifyLinkToken(SECRET, flip(token, 3)), null, 'payload flip')
  t.equal(verifyLinkToken(SECRET, flip(token, token.length - 1)), null, 'last MAC char flip')
  t.equal(verifyLinkToken(SECRET, `${token}A`), null, 'extra char')
  t.equal(verifyLinkToken(SECRET, token.slice(0, -1)), null, 'truncated')
  t.equal(verifyLinkToken(SECRET, 'garbage'), null)
  t.equal(verifyLinkToken(SECRET, ''), null)
  t.equal(verifyLinkToken(SECRET, token.replace('.', '')), null)
})

t.test('issue, reuse, expiry, single use and archived rollouts against the database', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const { db } = app
  // consumeLink runs inside the callback's grant transaction; here each call gets its own.
  const consumed = (linkId: number, grantId: number) =>
    db.transaction().execute((trx) => consumeLink(trx, linkId, grantId, clock.now()))
  const context = linkContextFrom(app.config, clock)
  const rollout = await createRollout(db, { now: clock.now() })
  const userId = await createMember(
    app.app.deps,
    {
      cartaUserId: 'c-1',
      email: 'ann@example.com',
      appKey: 'production-v1',
      granted: ['read_issuer_info', 'read_user_info'],
    },
    clock.now(),
  )

  const first = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  t.equal(first.reused, false)
  t.ok(first.url.startsWith(`${app.config.publicUrl}/reauthorize/`))
  t.equal(first.link.expires_at, clock.now() + 14 * DAY, 'default TTL is 14 days')
  const row = await db.selectFrom('reauth_links').selectAll().where('id', '=', first.link.id).executeTakeFirstOrThrow()
  t.notOk(JSON.stringify(row).includes(first.url.split('/').pop()!.split('.')[1]!), 'the MAC is not stored')
  t.notOk(JSON.stringify(row).includes('reauthorize'), 'the URL is not stored')

  const again = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  t.equal(again.reused, true, 'an open link is reused')
  t.equal(again.url, first.url, 'the same URL is rebuilt from the row')
  t.equal(
    Number(
      (
        await db
          .selectFrom('reauth_links')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    1,
  )
  t.equal((await auditRows(db, 'link.issued')).length, 1, 'one link.issued event for one link')

  const token = first.url.split('/reauthorize/')[1]!
  t.match(await resolveLink(db, app.config.linkSigningSecret, token, clock.now()), {
    ok: true,
    link: { id: first.link.id, user_id: userId },
  })
  t.match(await resolveLink(db, app.config.linkSigningSecret, flip(token, 5), clock.now()), {
    ok: false,
    reason: 'tampered',
  })

  // Expiry via the clock: valid one millisecond before, expired at the instant.
  clock.set(first.link.expires_at - 1)
  t.match(await resolveLink(db, app.config.linkSigningSecret, token, clock.now()), { ok: true })
  clock.set(first.link.expires_at)
  t.match(await resolveLink(db, app.config.linkSigningSecret, token, clock.now()), { ok: false, reason: 'expired' })
  t.equal(await consumed(first.link.id, 1), false, 'an expired link cannot be consumed')
  t.equal((await latestLinks(db, rollout.id, [userId], context)).get(userId)?.state, 'expired')
  const renewed = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  t.equal(renewed.reused, false, 'an expired link is not reused')
  t.not(renewed.url, first.url)

  // Single use: the second consume fails; the audit event lands once.
  t.equal(await consumed(renewed.link.id, 7), true)
  t.equal(await consumed(renewed.link.id, 8), false)
  const used = await db
    .selectFrom('reauth_links')
    .selectAll()
    .where('id', '=', renewed.link.id)
    .executeTakeFirstOrThrow()
  t.equal(used.used_grant_id, 7)
  t.equal((await auditRows(db, 'link.used')).length, 1)
  t.match(await resolveLink(db, app.config.linkSigningSecret, renewed.url.split('/reauthorize/')[1]!, clock.now()), {
    ok: false,
    reason: 'used',
  })
  const latest = (await latestLinks(db, rollout.id, [userId, 999], context)).get(userId)
  t.match(latest, { state: 'used', url: null })
  t.notOk((await latestLinks(db, rollout.id, [999], context)).has(999))

  // Two concurrent consumes of one link: exactly one wins.
  const racer = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  const results = await Promise.all([
    db.transaction().execute((trx) => consumeLink(trx, racer.link.id, 11, clock.now())),
    db.transaction().execute((trx) => consumeLink(trx, racer.link.id, 12, clock.now())),
  ])
  t.same(results.filter(Boolean).length, 1, `exactly one consume wins (${results})`)

  // Archived rollout: no more issuing, open links refuse.
  const open = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' })
  await db
    .updateTable('rollouts')
    .set({ status: 'archived', archived_at: clock.now() })
    .where('id', '=', rollout.id)
    .execute()
  t.match(await resolveLink(db, app.config.linkSigningSecret, open.url.split('/reauthorize/')[1]!, clock.now()), {
    ok: false,
    reason: 'archived',
  })
  t.equal(await consumed(open.link.id, 13), false, 'archived rollout: consume refuses')
  const refused = await issueLink(db, context, { rolloutId: rollout.id, userId, issuedBy: 'operator:ops' }).catch(
    (err: unknown) => err,
  )
  t.match(refused, { code: 'rollout.archived' }, 'archived rollout: no more links')
})

t.test('LINK_TTL_DAYS sets the expiry', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock, env: { LINK_TTL_DAYS: '3' } })
  const rollout = await createRollout(app.db, { now: clock.now() })
  const userId = await createMember(
    app.app.deps,
    { cartaUserId: 'c-1', email: 'a@example.com', appKey: 'production-v1', granted: ['read_user_info'] },
    clock.now(),
  )
  const issued = await issueLink(app.db, linkContextFrom(app.config, clock), {
    rolloutId: rollout.id,
    userId,
    issuedBy: 'operator:ops',
  })
  t.equal(issued.link.expires_at - clock.now(), 3 * DAY)
})

t.test('bulk issue counts against the filter and reuses open links', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const { db } = app
  const context = linkContextFrom(app.config, clock)
  const v1 = ['read_issuer_info', 'read_user_info']
  // Another rollout's members never leak in: eve joins `other` before `rollout` exists (an empty
  // rollout measures nobody who came before it, see fixtures.ts), so she is a member of `other` only.
  const other = await createRollout(db, { name: 'Other', now: clock.now() })
  const eve = await createMember(
    app.app.deps,
    { cartaUserId: 'c-eve', email: 'eve@example.com', appKey: 'production-v1', granted: v1 },
    clock.now(),
  )
  t.ok(
    await db
      .selectFrom('rollout_members')
      .select('user_id')
      .where('rollout_id', '=', other.id)
      .where('user_id', '=', eve)
      .executeTakeFirst(),
    'eve is a member of the other rollout',
  )
  const rollout = await createRollout(db, { now: clock.now() })
  const ids: Record<string, number> = {}
  ids.ann = await createMember(
    app.app.deps,
    { cartaUserId: 'c-ann', email: 'ann@example.com', appKey: 'production-v1', granted: v1 },
    clock.now(),
  )
  ids.bob = await createMember(
    app.app.deps,
    { cartaUserId: 'c-bob', email: 'bob@example.org', appKey: 'production-v1', granted: ['read_user_info'] },
    clock.now(),
  )
  ids.cat = await createMember(
    app.app.deps,
    { cartaUserId: 'c-cat', email: 'cat@example.com', appKey: 'playground', granted: ['read_user_info'] },
    clock.now(),
  )
  ids.dan = await createMember(
    app.app.deps,
    { cartaUserId: 'c-dan', email: 'dan@example.com', appKey: 'production-v2', granted: rollout.scopes },
    clock.now(),
  )
  const filter = async (input: { scope?: string; app?: number; q?: string }) => lackingFilter(input)
  const v1App = await appId(db, 'production-v1')

  const byScope = await issueLinksBulk(db, context, {
    rolloutId: rollout.id,
    filter: await filter({ scope: 'read_issuer_info' }),
    issuedBy: 'operator:ops',
  })
  t.same(byScope, { matched: 2, issued: 2, reused: 0 }, 'bob (v1) and cat (playground) lack read_issuer_info')
  const byApp = await issueLinksBulk(db, context, {
    rolloutId: rollout.id,
    filter: await filter({ app: v1App }),
    issuedBy: 'operator:ops',
  })
  t.same(byApp, { matched: 2, issued: 1, reused: 1 }, 'ann is new, bob reused')
  const bySearch = await issueLinksBulk(db, context, {
    rolloutId: rollout.id,
    filter: await filter({ q: 'ca' }),
    issuedBy: 'operator:ops',
  })
  t.same(bySearch, { matched: 1, issued: 0, reused: 1 }, 'cat by email prefix')
  const byId = await issueLinksBulk(db, context, {
    rolloutId: rollout.id,
    filter: await filter({ q: 'c-bob' }),
    issuedBy: 'operator:ops',
  })
  t.same(byId, { matched: 1, issued: 0, reused: 1 })
  const all = await issueLinksBulk(db, context, {
    rolloutId: rollout.id,
    filter: await filter({}),
    issuedBy: 'operator:ops',
  })
  t.same(all, { matched: 3, issued: 0, reused: 3 })

  const links = await db.selectFrom('reauth_links').select(['user_id', 'rollout_id']).execute()
  t.same(
    links.map((l) => l.user_id).sort(),
    [ids.ann, ids.bob, ids.cat].sort(),
    'one link per lacking user, none for the covered user or the other rollout',
  )
  const events = await auditRows(db, 'links.issued_bulk')
  t.equal(events.length, 5, 'one audit event per bulk action')
  t.match(events[0]!.details, { matched: 2, issued: 2, reused: 0, filter: { scope: 'read_issuer_info' } })
  t.equal((await auditRows(db, 'link.issued')).length, 0, 'no per-link events for bulk')
})

t.test('bulk issue walks past one batch', async (t) => {
  const clock = new ManualClock(Date.parse('2025-03-01T10:00:00Z'))
  const app = await startTestApp(t, { clock })
  const { db } = app
  const rollout = await createRollout(db, { now: clock.now() })
  for (let i = 0; i < 1203; i++) {
    await createMember(
      app.app.deps,
      { cartaUserId: `c-${i}`, email: `u${i}@example.com`, appKey: 'production-v1', granted: ['read_user_info'] },
      clock.now(),
    )
  }
  const result = await issueLinksBulk(db, linkContextFrom(app.config, clock), {
    rolloutId: rollout.id,
    filter: { sort: 'user' },
    issuedBy: 'operator:ops',
  })
  t.same(result, { matched: 1203, issued: 1203, reused: 0 })
  const n = await db
    .selectFrom('reauth_links')
    .select((eb) => eb.fn.count('user_id').distinct().as('n'))
    .executeTakeFirstOrThrow()
  t.equal(Number(n.n), 1203, 'each user once')
})
