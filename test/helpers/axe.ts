// axe-core in the browser tests. The app's CSP allows only its own scripts (script-src 'self'),
// so axe is not added as a <script> tag: its source is evaluated through the DevTools protocol
// (page.evaluate), which the page's CSP does not govern. The page itself stays untouched.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  helpUrl: string
  nodes: Array<{ target: string; summary: string }>
}

/** Impacts that fail a test; moderate and minor ones are reported but tolerated. */
export const BLOCKING_IMPACTS = ['serious', 'critical']

/** Runs every axe rule (WCAG 2.x A/AA and best practices) on the page as it is now. */
export async function runAxe(page: Page): Promise<AxeViolation[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource)
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<AxeRun> } }).axe
    interface AxeRun {
      violations: Array<{
        id: string
        impact: string | null
        help: string
        helpUrl: string
        nodes: Array<{ target: unknown[]; failureSummary?: string }>
      }>
    }
    const result = await axe.run(document, { resultTypes: ['violations'] })
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.map(String).join(' '), summary: n.failureSummary ?? '' })),
    }))
  })
}

/** One readable block per violation, for test failure messages. */
export function formatViolations(violations: AxeViolation[]): string {
  return violations
    .map(
      (v) =>
        `[${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n` +
        v.nodes.map((n) => `    ${n.target}\n      ${n.summary.replace(/\n/g, '\n      ')}`).join('\n'),
    )
    .join('\n')
}
