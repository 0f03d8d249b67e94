// The import rule of src/README.md ("Layers"), checked on every file: the domain (everything in
// src/ but the edges) never imports the HTTP layer, the CLI, the sandbox or Fastify; migrations
// import nothing from src/ (they are frozen in time); and no module keeps per-app state in a
// module-level WeakMap or Map (state lives in deps, decorators or the job runner).
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import t from 'tap'
import { projectRoot } from '../src/config.js'

const src = join(projectRoot, 'src')
/** The edges: they may import anything; nothing in the domain may import them. */
const EDGES = ['http', 'cli', 'sandbox', 'app.ts', 'server.ts']
const FRAMEWORK = /^(fastify|fastify-plugin|@fastify\/.*|@fastify\/type-provider-typebox)$/

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') ? [path] : []
  })
}

/** Every module specifier a file imports (static, dynamic and type-only). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => (m[1] ?? m[2])!)
}

const isEdge = (path: string) => EDGES.some((edge) => relative(src, path).split('/')[0] === edge)

t.test('the domain imports neither the edges nor Fastify', async (t) => {
  const domain = walk(src).filter((file) => !isEdge(file))
  t.ok(domain.length > 30, `${domain.length} domain files checked`)
  for (const file of domain) {
    const name = relative(projectRoot, file)
    for (const specifier of imports(file)) {
      t.notMatch(specifier, FRAMEWORK, `${name} imports ${specifier}`)
      if (specifier.startsWith('.')) {
        const target = resolve(file, '..', specifier)
        t.notOk(isEdge(target) && target.startsWith(src), `${name} imports the edge ${relative(src, target)}`)
      }
    }
  }
})

t.test('migrations import nothing from src/', async (t) => {
  for (const file of walk(join(projectRoot, 'migrations'))) {
    for (const specifier of imports(file))
      t.notOk(specifier.startsWith('.'), `${relative(projectRoot, file)} imports ${specifier}`)
  }
})

t.test('no module-level WeakMap or registry holds per-app state', async (t) => {
  for (const file of walk(src)) {
    const text = readFileSync(file, 'utf8')
    t.notMatch(text, /^(?:export )?const \w+ = new WeakMap/m, `${relative(projectRoot, file)}: module-level WeakMap`)
  }
})
