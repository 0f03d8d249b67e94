// The Eta templates in views/: pages (src/http/render.ts), the sandbox's pages and the report's
// HTML file are all rendered by this one instance.
import { join } from 'node:path'
import { Eta } from 'eta'
import { projectRoot } from './config.js'

export const viewsDir = join(projectRoot, 'views')

export const eta = new Eta({
  views: viewsDir,
  cache: process.env.NODE_ENV === 'production',
  autoEscape: true,
  autoTrim: false,
})
