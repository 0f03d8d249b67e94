// The report as an email (README, "Coverage reports"): the summary in a plain-text and an HTML
// part, with the same coverage definition as the files and pages, and the HTML report attached.
// Rendered here, handed to the mail module's outbox as a finished message.
import { COVERAGE_DEFINITION, formatCoverage } from '../rollouts/coverage.js'
import { eta } from '../views.js'
import { type ReportDocument, localTime, summaryTable } from './formats.js'

export interface ReportMessage {
  subject: string
  text: string
  html: string
  attachments: Array<{ filename: string; content: string; contentType: string }>
}

export function reportMessage(
  doc: ReportDocument,
  attachment: { filename: string; content: string },
  reportsUrl: string | null,
): ReportMessage {
  const when = localTime(doc.takenAt, doc.timeZone)
  const subject = `Scope coverage report ${when}`
  const trigger = doc.trigger === 'schedule' ? 'scheduled' : 'run on demand'
  const text = [
    `${subject} (${trigger})`,
    '',
    // summaryTable ends with COVERAGE_DEFINITION.
    summaryTable(doc),
    '',
    `The full report is attached (${attachment.filename}).`,
    ...(reportsUrl ? [`All reports: ${reportsUrl}`] : []),
    '',
  ].join('\n')
  const html = eta.render('mail/report-html', {
    subject,
    when,
    trigger,
    rollouts: doc.rollouts,
    pct: formatCoverage,
    definition: COVERAGE_DEFINITION,
    filename: attachment.filename,
    reportsUrl,
  })
  return {
    subject,
    text,
    html,
    attachments: [
      { filename: attachment.filename, content: attachment.content, contentType: 'text/html; charset=utf-8' },
    ],
  }
}
