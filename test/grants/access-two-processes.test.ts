// Two processes on one database: the DB lease makes it one refresh in total; and
// invalid_grant after another process already rotated the token does not break the grant.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import t from 'tap'
import { listIssuers } from '../../src/carta/api.js'
import { withAccessToken } from '../../src/grants/access.js'
import { changeGrant } from '../../src/grants/change.js'
import { resolveEndUser } from '../../src/users/end-users.js'
import { startTestApp } from '../helpers/app.js'
import { bearerToken, startFakeCarta } from '../helpers/fake-carta.js'
import { connectUser, expireTokens, sandboxStats, tokenVersion } from '../helpers/connect.js'

const script = fileURLToPath(new URL('./second-process.ts', import.meta.url))

t.test(
  'two processes, expired token, ten calls in all: one refresh at the sandbox',
  { skip: process.env.TEST_DATABASE_URL ? 'SQLite file only' : false },
  async (t) => {
    const app = await startTestApp(t)
    const { grantId } = await connectUser(app)
    expireTokens(app)
    const database = app.config.database as { path: string }
    const env = {
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(new URL(app.url).port),
      PUBLIC_URL: app.url,
      DATA_DIR: app.dataDir,
      DATABASE_PATH: database.path,
      LOG_LEVEL: 'silent',
    }
    const child = spawn(
      process.execPath,
      ['--import=tsx', script, JSON.stringify({ env, clockOffsetMs: app.clock.now() - Date.now(), grantId, calls: 5 })],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    )
    t.teardown(() => child.kill())
    let out = ''
    const ready = new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk) => {
        out += String(chunk)
        if (out.includes('ready')) resolve()
      }),
    )
    const done = new Promise<{ ok: number; errors: string[] }>((resolve) =>
      child.on('exit', () => resolve(JSON.parse(out.split('\n').filter(Boolean).pop()!))),
    )
    await ready
    const stats0 = await sandboxStats(app)
    child.stdin.write('go\n')
    const deps = { ...app.app.deps }
    const mine = await Promise.all(
      Array.from({ length: 5 }, () => withAccessToken(deps, grantId, (token, ctx) => listIssuers(ctx.app, token))),
    )
    const theirs = await done
    t.equal(mine.length, 5, 'this process: five calls succeed')
    t.same(theirs, { ok: 5, errors: [] }, 'other process: five calls succeed')
    t.equal((await sandboxStats(app)).refreshes - stats0.refreshes, 1, 'exactly one refresh at the sandbox')
    t.equal(await tokenVersion(app, grantId), 2)
  },
)

t.test(
  'invalid_grant after another process already rotated the token: not broken',
  { skip: process.env.TEST_DATABASE_URL ? 'SQLite file only' : false },
  async (t) => {
    const fake = await startFakeCarta(t, ['read_user_info', 'read_issuer_info'])
    const app = await startTestApp(t, { env: fake.env() })
    const appRow = await app.db
      .selectFrom('oauth_apps')
      .select(['id'])
      .where('key', '=', 'fake-prod')
      .executeTakeFirstOrThrow()
    const initial = bearerToken().body as { access_token: string; refresh_token: string }
    const now = app.clock.now()
    const { grantId } = await app.db.transaction().execute(async (trx) => {
      const identity = { cartaUserId: 'carta-user-1', email: 'ada@example.com', name: 'Ada' }
      const { user } = await resolveEndUser(trx, { identity, localKey: null, now })
      const scopes = ['read_issuer_info', 'read_user_info']
      return changeGrant(
        trx,
        app.app.deps.cipher,
        {
          kind: 'granted',
          userId: user.id,
          app: { id: appRow.id, key: 'fake-prod' },
          requested: scopes,
          granted: scopes,
          source: 'assumed',
          tokens: {
            accessToken: initial.access_token,
            refreshToken: initial.refresh_token,
            expiresAt: now + 3600_000,
            tokenType: 'Bearer',
            scope: undefined,
          },
          actor: 'test',
        },
        now,
      )
    })
    const cipher = app.app.deps.cipher
    const side = new Database((app.config.database as { path: string }).path)
    t.teardown(() => side.close())
    const rotated = bearerToken()
    let refreshCalls = 0
    fake.token = () => {
      refreshCalls++
      // While our refresh is in flight, "another process" stores the rotated tokens (a second
      // connection on the same file, synchronously) — then Carta refuses our now-spent token.
      const body = rotated.body as { access_token: string; refresh_token: string }
      const access = cipher.seal(body.access_token)
      const refresh = cipher.seal(body.refresh_token, access.keyId)
      side
        .prepare(
          'update grant_tokens set access_token = ?, refresh_token = ?, key_id = ?, access_expires_at = ?, version = version + 1 where grant_id = ?',
        )
        .run(access.value, refresh.value, access.keyId, app.clock.now() + 3600_000, grantId)
      return { status: 400, body: { error: 'invalid_grant', error_description: 'refresh token already used' } }
    }
    const seen: string[] = []
    fake.issuers = (req) => {
      seen.push(String(req.headers.authorization))
      return { body: { issuers: [{ id: 7, legalName: 'Analytical Engines Inc.' }] } }
    }
    expireTokens(app)
    const issuers = await withAccessToken({ ...app.app.deps }, grantId, (token, ctx) => listIssuers(ctx.app, token))
    t.equal(issuers.length, 1, "the call succeeds with the other process's token")
    t.equal(refreshCalls, 1)
    t.equal(
      seen.at(-1),
      `Bearer ${(rotated.body as { access_token: string }).access_token}`,
      'used the rotated access token',
    )
    const grant = await app.db.selectFrom('grants').select('status').where('id', '=', grantId).executeTakeFirstOrThrow()
    t.equal(grant.status, 'active', 'grant not marked broken')
    t.equal(
      (await app.db.selectFrom('audit_events').select('id').where('type', '=', 'grant.broken').execute()).length,
      0,
    )
    t.equal(await tokenVersion(app, grantId), 2, "the other process's version stands")
  },
)
