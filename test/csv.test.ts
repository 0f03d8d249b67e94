// The one CSV encoder (src/csv.ts): RFC 4180 quoting, spreadsheet formulas neutralised, numbers as numbers.
import t from 'tap'
import { csvField, csvLine } from '../src/csv.js'

t.test('fields are quoted per RFC 4180 and formula-safe', async (t) => {
  t.equal(csvField('plain'), 'plain')
  t.equal(csvField(12), '12')
  t.equal(csvField(null), '')
  t.equal(csvField(undefined), '')
  t.equal(csvField('a,b'), '"a,b"')
  t.equal(csvField('say "hi"'), '"say ""hi"""')
  t.equal(csvField('line\nbreak'), '"line\nbreak"')
  t.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`)
  t.equal(csvField('+1'), "'+1")
  t.equal(csvField('@sum'), "'@sum")
  t.equal(csvField('\tx'), "'\tx")
  t.equal(csvField(-1), '-1', 'numbers are not text')
  t.equal(csvLine(['a', 'b,c', null]), 'a,"b,c",\r\n')
})
