// The mint-grants control: tokens for demo users as if an integrator had connected them earlier,
// exported as JSON Lines in the import format. The tokens must be real: API, refresh, revoke.
import t from 'tap'
import { parseScopes } from '../../src/scopes.js'
import { startTestApp } from '../helpers/app.js'
import { api, basic, control, revokeRequest, tokenRequest } from './helpers.js'

interface Line {
  carta_user_id: string
  client_id: string
  email: string
  name: string
  access_token: string
  refresh_token: string
  access_expires_at: string
  scopes?: string
}

t.test('mint-grants', async (t) => {
  const app = await startTestApp(t)
  const base = `${app.url}/sandbox`
  const v1 = app.config.apps.find((a) => a.key === 'production-v1')!
  const v2 = app.config.apps.find((a) => a.key === 'production-v2')!
  const mint = async (body: unknown, query = '') => {
    const res = await fetch(`${base}/_control/mint-grants${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, type: res.headers.get('content-type'), text }
  }
  const lines = (text: string) =>
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line)

  t.test('all users, JSON Lines in the import format without scopes; the tokens work', async (t) => {
    const res = await mint({ clientId: v1.clientId, users: 'all' })
    t.equal(res.status, 200)
    t.match(res.type, /^application\/x-ndjson/)
    t.ok(res.text.endsWith('\n'), 'one object per line, newline-terminated')
    const rows = lines(res.text)
    t.equal(rows.length, 6)
    t.same(Object.keys(rows[0]!), [
      'carta_user_id',
      'client_id',
      'email',
      'name',
      'access_token',
      'refresh_token',
      'access_expires_at',
    ])
    t.same(rows[1], {
      carta_user_id: 'cu_1002',
      client_id: v1.clientId,
      email: 'ben.hartley@harbor.example',
      name: 'Ben Hartley',
      access_token: rows[1]!.access_token,
      refresh_token: rows[1]!.refresh_token,
      access_expires_at: new Date(app.clock.now() + 3600_000).toISOString(),
    })
    t.equal(new Set(rows.map((r) => r.access_token)).size, 6, 'distinct tokens')

    const me = await api(base, '/v1alpha1/user', rows[1]!.access_token)
    t.equal(me.status, 200)
    t.equal(me.json.id, 'cu_1002', 'the token belongs to that user')
    t.equal((await api(base, '/v1alpha1/issuers', rows[1]!.access_token)).status, 200, 'with the client scopes')
    const cap = await api(base, '/v1alpha1/issuers/iss_lumen/capitalizationTable', rows[1]!.access_token)
    t.equal(cap.status, 403, 'v1 has no cap-table scope')

    const auth = basic(v1.clientId, v1.clientSecret)
    const refreshed = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: rows[2]!.refresh_token },
      auth,
    )
    t.equal(refreshed.status, 200, 'the refresh token works (and rotates)')
    t.equal(
      (await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: rows[2]!.refresh_token }, auth)).json
        .error,
      'invalid_grant',
    )
    t.equal((await revokeRequest(base, { token: rows[3]!.refresh_token }, auth)).status, 200)
    t.equal(
      (await api(base, '/v1alpha1/user', rows[3]!.access_token)).status,
      401,
      'revoking the refresh token ends the grant',
    )

    const stats = await control(base, 'stats')
    t.equal(stats.json.mintedGrants, 6)
    t.notOk(JSON.stringify(stats.json).includes(rows[0]!.access_token), 'stats never show token values')
    t.notOk(JSON.stringify(app.logs).includes(rows[0]!.access_token), 'nor does the log')
    t.ok(app.logs.some((l) => l.msg === 'sandbox: grants minted' && l.grants === 6))
  })

  t.test('chosen users and scopes, per-user subsets, random subsets, include_scopes', async (t) => {
    const some = lines(
      (
        await mint(
          {
            clientId: v2.clientId,
            users: ['cu_1004', { id: 'cu_1005', scopes: ['read_user_info'] }],
            scopes: ['read_user_info', 'read_issuer_info'],
          },
          '?include_scopes=1',
        )
      ).text,
    )
    t.same(
      some.map((r) => [r.carta_user_id, r.scopes]),
      [
        ['cu_1004', 'read_issuer_info read_user_info'],
        ['cu_1005', 'read_user_info'],
      ],
    )
    t.equal((await api(base, '/v1alpha1/issuers', some[1]!.access_token)).status, 403, 'the subset is real')

    const random = lines(
      (await mint({ clientId: v2.clientId, users: 'all', randomSubset: true }, '?include_scopes=true')).text,
    )
    for (const r of random) {
      const granted = parseScopes(r.scopes)
      t.ok(granted.length >= 1, `${r.carta_user_id}: at least one scope`)
      t.ok(
        granted.every((s) => v2.scopes.includes(s)),
        `${r.carta_user_id}: only the client's scopes`,
      )
      const held = (await api(base, '/v1alpha1/user', r.access_token)).status === 200
      t.equal(held, granted.includes('read_user_info'), `${r.carta_user_id}: the API agrees with the listed scopes`)
    }
    const stats = await control(base, 'stats')
    const grants = stats.json.grants as Array<{ userId: string; clientId: string; scopes: string }>
    for (const r of random)
      t.ok(
        grants.some((g) => g.userId === r.carta_user_id && g.clientId === v2.clientId && g.scopes === r.scopes),
        'recorded as a sandbox grant',
      )
  })

  t.test('an access token minted already expired: 401, and the refresh token still works', async (t) => {
    const [row] = lines((await mint({ clientId: v2.clientId, users: ['cu_1001'], expiresInSeconds: -60 })).text)
    t.equal(row!.access_expires_at, new Date(app.clock.now() - 60_000).toISOString())
    t.equal((await api(base, '/v1alpha1/user', row!.access_token)).status, 401)
    const refreshed = await tokenRequest(
      base,
      { grant_type: 'refresh_token', refresh_token: row!.refresh_token },
      basic(v2.clientId, v2.clientSecret),
    )
    t.equal(refreshed.status, 200)
    t.equal((await api(base, '/v1alpha1/user', refreshed.json.access_token as string)).status, 200)
  })

  t.test('bad requests: 400 naming the problem, nothing minted', async (t) => {
    const before = (await control(base, 'stats')).json.mintedGrants
    const cases: Array<[unknown, RegExp]> = [
      [{ clientId: 'nobody', users: 'all' }, /clientId/],
      [{ users: 'all' }, /clientId/],
      [{ clientId: v1.clientId, users: 'all', scopes: ['read_issuer_capitalizationtablesummary'] }, /may not hold/],
      [{ clientId: v1.clientId, users: 'all', scopes: [] }, /scopes/],
      [{ clientId: v1.clientId, users: ['cu_9999'] }, /Unknown demo user/],
      [{ clientId: v1.clientId, users: ['cu_1001', 'cu_1001'] }, /twice/],
      [{ clientId: v1.clientId, users: [] }, /users/],
      [{ clientId: v1.clientId }, /users/],
      [
        { clientId: v1.clientId, users: [{ id: 'cu_1001', scopes: ['read_issuer_capitalizationtablesummary'] }] },
        /subset/,
      ],
      [{ clientId: v1.clientId, users: 'all', expiresInSeconds: 1e9 }, /expiresInSeconds/],
      [{ clientId: v1.clientId, users: 'all', randomSubset: 'yes' }, /randomSubset/],
    ]
    for (const [body, message] of cases) {
      const res = await mint(body)
      t.equal(res.status, 400, JSON.stringify(body))
      t.match(JSON.parse(res.text).error_description, message)
    }
    const form = await fetch(`${base}/_control/mint-grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'clientId=x',
    })
    t.equal(form.status, 415, 'JSON only')
    t.equal((await control(base, 'stats')).json.mintedGrants, before, 'nothing minted')
  })
})
