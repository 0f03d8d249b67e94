// Email settings: each bad value stops start-up with a message naming the variable.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config.js'

const base = () => ({ NODE_ENV: 'test', DATA_DIR: mkdtempSync(join(tmpdir(), 'scope-ledger-mail-config-')) })

t.test('email settings are validated and default sensibly', async (t) => {
  t.throws(() => loadConfig({ ...base(), SMTP_URL: 'http://mail.example.com' }), /SMTP_URL must start with smtp/)
  t.throws(() => loadConfig({ ...base(), SMTP_URL: 'not a url' }), /SMTP_URL must be an smtp/)
  t.throws(() => loadConfig({ ...base(), MAIL_FROM: 'nobody' }), /MAIL_FROM must be an address/)
  t.throws(() => loadConfig({ ...base(), MAIL_REMINDER_DAYS: '7,3' }), /MAIL_REMINDER_DAYS/)
  t.throws(() => loadConfig({ ...base(), MAIL_RATE_PER_SECOND: '-1' }), /MAIL_RATE_PER_SECOND/)
  const dev = loadConfig(base())
  t.equal(dev.mail.transport.kind, 'mailbox', 'no SMTP_URL outside production: the local mailbox')
  t.same(dev.mail.reminderDays, [3, 7])
  const smtp = loadConfig({
    ...base(),
    SMTP_URL: 'smtps://u:p@mail.example.com:465',
    MAIL_FROM: 'Ops <ops@example.com>',
  })
  t.equal(smtp.mail.transport.kind, 'smtp')
  t.equal(smtp.mail.from, 'Ops <ops@example.com>')
})
