import { sql } from 'kysely'
// Set-based writes of many rows: how many rows one statement may carry. SQLite binds at most
// 32,766 parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32) and PostgreSQL's wire
// protocol 65,535; staying under 30,000 keeps one multi-row INSERT or IN list valid on both.
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
