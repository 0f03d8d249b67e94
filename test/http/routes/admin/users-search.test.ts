// /admin/users: every end user found by the beginning of email, name (any case) or Carta id, with
// their connection state; keyset pages of 50 without gaps or duplicates; bad input is a 400.
import t from 'tap'
import { startTestApp } from '../../../helpers/app.js'
import { addGrant, addUser, breakGrant, signedInOperator } from '../../../helpers/ledger.js'

t.test('Users page: search, states, keyset pages', async (t) => {
  const app = await startTestApp(t)
  const { db, url } = app
  const now = app.clock.now()
  const ben = await addUser(db, now, { carta: 'cu_1002', email: 'Ben.Hartley@example.com', name: 'Ben Hartley' })
  await addGrant(app.app.deps, ben, 'production-v1', ['read_user_info'], now)
  const dana = await addUser(db, now, { carta: 'cu_1004', email: 'dana@example.com', name: 'Dana Ruiz' })
  await addGrant(app.app.deps, dana, 'production-v2', ['read_user_info'], now)
  await breakGrant(app.app.deps, dana, now)
  for (let i = 0; i < 110; i++) await addUser(db, now, { carta: `cx_${1000 + i}`, email: `bulk${i}@example.org` })
  const operator = await signedInOperator(db, url, now)

  const byEmail = await operator.get(`${url}/admin/users?q=BEN.h`)
  t.equal(byEmail.status, 200)
  t.match(byEmail.text, `<a href="/admin/users/${ben}">Ben Hartley</a>`, 'email beginning, any case')
  t.match(byEmail.text, '<span class="badge ok">connected</span> <span class="muted">via Production v1</span>')
  t.notMatch(byEmail.text, 'Dana Ruiz')
  const byName = await operator.get(`${url}/admin/users?q=dana%20r&by=name`)
  t.match(byName.text, 'Dana Ruiz')
  t.match(byName.text, 'must reconnect', 'a broken connection says so')
  t.notMatch(byName.text, 'Ben Hartley')
  const byCarta = await operator.get(`${url}/admin/users?q=cu_100&by=carta`)
  t.match(byCarta.text, 'Ben Hartley')
  t.match(byCarta.text, 'Dana Ruiz')
  t.notMatch(byCarta.text, 'bulk1@', 'only ids that start so')
  t.match((await operator.get(`${url}/admin/users?q=nobody@`)).text, 'No user’s email starts with “nobody@”')

  // Keyset pages: all users, then a search spanning pages, each user once.
  for (const start of [`${url}/admin/users`, `${url}/admin/users?q=bulk&by=email`]) {
    const seen: string[] = []
    let next: string | null = start
    while (next) {
      const res = await operator.get(next)
      t.equal(res.status, 200)
      seen.push(...[...res.text.matchAll(/<a href="\/admin\/users\/(\d+)">/g)].map((m) => m[1]!))
      const href = /href="([^"]*after=[^"]*)">Next page/.exec(res.text)?.[1]
      next = href ? `${url}${href.replace(/&amp;/g, '&')}` : null
    }
    t.equal(new Set(seen).size, seen.length, 'no duplicates')
    t.equal(seen.length, start.includes('bulk') ? 110 : 112, 'no gaps')
  }

  t.equal((await operator.get(`${url}/admin/users?after=!!`)).status, 400, 'a malformed cursor')
  t.equal((await operator.get(`${url}/admin/users?after=eHl6`)).status, 400, 'a cursor that decodes to nothing')
  t.equal((await operator.get(`${url}/admin/users?q=a%00b`)).status, 400, 'NUL refused')
  t.equal((await operator.get(`${url}/admin/users?by=phone&q=1`)).status, 400)
})
