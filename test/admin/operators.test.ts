import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { checkOperatorCredentials, createOperator, ensureFirstOperator } from '../../src/admin/operators.js'
import { hashPassword, verifyPassword } from '../../src/admin/passwords.js'
import { projectRoot } from '../../src/config.js'
import { openDatabase } from '../../src/db/index.js'
import { startTestApp } from '../helpers/app.js'

t.test('scrypt hashes: salted, parameterised, checked in constant time', async (t) => {
  const a = await hashPassword('a long enough password')
  const b = await hashPassword('a long enough password')
  t.match(a, /^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/)
  t.not(a, b, 'a random salt per hash')
  t.ok(await verifyPassword('a long enough password', a))
  t.notOk(await verifyPassword('a long enough passwort', a))
  t.notOk(await verifyPassword('x', 'plain-text'))
  t.notOk(await verifyPassword('x', 'scrypt$99999999$8$1$abc$def'), 'absurd cost refused')
})

t.test('first operator on an empty ledger, once', async (t) => {
  const ctx = await startTestApp(t)
  const first = await ensureFirstOperator(ctx.db, ctx.clock.now())
  t.equal(first?.username, 'admin')
  t.ok(first && first.password.length >= 20)
  t.ok(await checkOperatorCredentials(ctx.db, 'admin', first!.password, ctx.clock.now()))
  t.equal(await ensureFirstOperator(ctx.db, ctx.clock.now()), null, 'not again once an operator exists')
  await t.rejects(createOperator(ctx.db, 'admin', 'another long password', 1), { code: 'operator.invalid' })
  await t.rejects(createOperator(ctx.db, 'Bad Name!', 'another long password', 1), { code: 'operator.invalid' })
  await t.rejects(createOperator(ctx.db, 'short', 'tiny', 1), { code: 'operator.invalid' })
})

t.test('CLI: operator create / reset-password, password from stdin or generated', async (t) => {
  const ctx = await startTestApp(t)
  const dbPath = join(ctx.dataDir, 'test.db')
  const env = { ...process.env, NODE_ENV: 'test', DATA_DIR: ctx.dataDir, DATABASE_PATH: dbPath, LOG_LEVEL: 'silent' }
  const cli = (args: string[], input: string) =>
    spawnSync(process.execPath, ['--import=tsx', join(projectRoot, 'src/cli/main.ts'), ...args], {
      env,
      input,
      encoding: 'utf8',
      cwd: projectRoot,
    })

  const piped = cli(['operator', 'create', 'carol'], 'piped password 123\n')
  t.equal(piped.status, 0, piped.stderr)
  t.match(piped.stdout, 'with the password from stdin')
  t.notMatch(piped.stdout, 'piped password 123')
  const db = await openDatabase({ kind: 'sqlite', path: dbPath })
  t.teardown(() => db.destroy())
  t.ok(await checkOperatorCredentials(db, 'carol', 'piped password 123', 1))

  const generated = cli(['operator', 'reset-password', 'carol'], '')
  t.equal(generated.status, 0, generated.stderr)
  const password = /Password \(shown once, store it now\): (\S+)/.exec(generated.stdout)?.[1]
  t.ok(password, 'a generated password is printed')
  t.ok(await checkOperatorCredentials(db, 'carol', password!, 1))
  t.notOk(await checkOperatorCredentials(db, 'carol', 'piped password 123', 1), 'the old password no longer works')

  const dup = cli(['operator', 'create', 'carol'], 'another password 456\n')
  t.equal(dup.status, 1)
  t.match(dup.stderr, 'already exists')
  const unknown = cli(['operator', 'reset-password', 'nobody'], 'another password 456\n')
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, 'No operator named "nobody"')
  const usage = cli(['operator', 'delete', 'carol'], '')
  t.equal(usage.status, 2)
})

t.test('CLI: operator create --role and set-role', async (t) => {
  const ctx = await startTestApp(t)
  const dbPath = join(ctx.dataDir, 'roles.db')
  const env = { ...process.env, NODE_ENV: 'test', DATA_DIR: ctx.dataDir, DATABASE_PATH: dbPath, LOG_LEVEL: 'silent' }
  const cli = (args: string[], input = '') =>
    spawnSync(process.execPath, ['--import=tsx', join(projectRoot, 'src/cli/main.ts'), ...args], {
      env,
      input,
      encoding: 'utf8',
      cwd: projectRoot,
    })
  const created = cli(['operator', 'create', 'vera', '--role', 'viewer'], 'piped password 123\n')
  t.equal(created.status, 0, created.stderr)
  t.match(created.stdout, 'role viewer')
  const db = await openDatabase({ kind: 'sqlite', path: dbPath })
  t.teardown(() => db.destroy())
  const role = async () =>
    (await db.selectFrom('operators').select('role').where('username', '=', 'vera').executeTakeFirstOrThrow()).role
  t.equal(await role(), 'viewer')
  const promoted = cli(['operator', 'set-role', 'vera', '--role=operator'])
  t.equal(promoted.status, 0, promoted.stderr)
  t.equal(await role(), 'operator')
  const audit = await db.selectFrom('audit_events').select(['type', 'details']).execute()
  t.match(audit, [{ type: 'operator.role_changed', details: /"to":"operator"/ }])
  const bad = cli(['operator', 'set-role', 'vera', '--role', 'root'])
  t.equal(bad.status, 2)
  t.match(bad.stderr, 'Roles are viewer, operator, admin')
  t.equal(cli(['operator', 'set-role', 'vera']).status, 2, 'set-role needs --role')
  const unknown = cli(['operator', 'set-role', 'nobody', '--role', 'admin'])
  t.equal(unknown.status, 1)
  t.equal(await role(), 'operator')
})
