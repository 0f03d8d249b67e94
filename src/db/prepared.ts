// Hot queries compiled once per database. Kysely builds a query's tree and compiles it to SQL on
// every call — for the API's per-request reads that is a tenth of the request's CPU. A prepared
// query is built once with marker values, remembers where each marker landed among the bound
// parameters, and afterwards only binds new values to the same SQL (which the SQLite dialect
// also keeps prepared, dialect.ts). The query is still written with Kysely, so it stays portable
// and type-checked; the SQL differs per engine, hence one compiled copy per Kysely instance.
import type { CompiledQuery, Compilable, Kysely } from 'kysely'

interface Compiled<R> {
  query: CompiledQuery<R>
  /** For each argument, the indexes of the bound parameters that carry it. */
  slots: number[][]
}

/**
 * `build` receives the arguments as opaque markers and must pass each one as a value (a bound
 * parameter: `where(col, '=', arg)`), never inspect or transform it.
 */
export function preparedQuery<DB, A extends unknown[], R>(
  build: (db: Kysely<DB>, ...args: A) => Compilable<R>,
): (db: Kysely<DB>, ...args: A) => Promise<R[]> {
  const compiled = new WeakMap<Kysely<DB>, Compiled<R>>()
  return async (db, ...args) => {
    let entry = compiled.get(db)
    if (!entry) {
      const markers = args.map((_, i) => ({ preparedArgument: i }))
      const query = build(db, ...(markers as unknown as A)).compile()
      const slots = markers.map((m) => query.parameters.flatMap((p, index) => (p === m ? [index] : [])))
      if (slots.some((s) => s.length === 0)) throw new Error('preparedQuery: an argument is not a bound parameter')
      entry = { query, slots }
      compiled.set(db, entry)
    }
    const parameters = [...entry.query.parameters]
    entry.slots.forEach((indexes, i) => {
      for (const index of indexes) parameters[index] = args[i]
    })
    const { rows } = await db.executeQuery<R>({ ...entry.query, parameters })
    return rows
  }
}
