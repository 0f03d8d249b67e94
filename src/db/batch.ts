// Set-based writes of many rows: how many rows one statement may carry. SQLite binds at most
// 32,766 parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32) and PostgreSQL's wire
// protocol 65,535; staying under 30,000 keeps one multi-row INSERT or IN list valid on both.
import { CompiledQuery, type Insertable, type Kysely, sql } from 'kysely'
import { isPostgres } from './dialect.js'
import type { Database } from './schema.js'

export const MAX_PARAMETERS = 30_000

/** Splits `items` into slices whose statements bind at most MAX_PARAMETERS (`perItem` each). */
export function chunked<T>(items: readonly T[], perItem = 1): T[][] {
  const size = Math.max(1, Math.floor(MAX_PARAMETERS / Math.max(1, perItem)))
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * `(select column1 as a, column2 as b from (values (…), …) as x)`: pairs of integers as a derived
 * table, for one UPDATE … FROM over many rows. Both engines name VALUES columns column1, column2
 * (SQLite has UPDATE … FROM since 3.33); the casts give PostgreSQL the parameters' types.
 */
export function integerPairs(pairs: ReadonlyArray<readonly [number, number]>, a: string, b: string) {
  const rows = pairs.map(([x, y]) => sql`(cast(${x} as integer), cast(${y} as integer))`)
  return sql`(select column1 as ${sql.id(a)}, column2 as ${sql.id(b)} from (values ${sql.join(rows)}) as x)`
}

/**
 * `INSERT INTO table (columns) VALUES (…), (…) [suffix]` for rows of one shape, as many statements
 * as MAX_PARAMETERS needs, compiled straight to SQL text and parameters; returns the rows a
 * `returning` suffix names. Kysely's builder makes and compiles an operation node per value: in
 * an import (~3,000 values a statement) that was a tenth of the CPU and much of the garbage.
 * Table, column names and suffix are this code's own, never input; values are parameters.
 */
export async function insertRows<T extends keyof Database & string, R = Record<string, unknown>>(
  db: Kysely<Database>,
  table: T,
  rows: ReadonlyArray<Insertable<Database[T]>>,
  suffix = '',
): Promise<R[]> {
  if (rows.length === 0) return []
  const columns = Object.keys(rows[0]!)
  const postgres = isPostgres(db)
  const head = `insert into "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) values `
  const out: R[] = []
  for (const chunk of chunked(rows, columns.length)) {
    const parameters: unknown[] = []
    const tuples: string[] = []
    for (const row of chunk) {
      const values = row as Record<string, unknown>
      const marks: string[] = []
      for (const column of columns) {
        parameters.push(values[column] ?? null)
        marks.push(postgres ? `$${parameters.length}` : '?')
      }
      tuples.push(`(${marks.join(', ')})`)
    }
    const result = await db.executeQuery<R>(CompiledQuery.raw(`${head}${tuples.join(', ')} ${suffix}`, parameters))
    out.push(...result.rows)
  }
  return out
}
