// The one check every redirect target passes (sign-in `next`, the connect flow's return path, the
// sandbox's sign-in `next`): a local path, never another host, and only characters a Location
// header carries safely. Anything else falls back to a fixed local page.
//  - local: starts with one "/" and not "//" or "/\" (a browser reads those as another host,
//    RFC 3986 §4.2), no backslash anywhere (browsers treat it like "/");
//  - plain: printable ASCII only (RFC 3986 §2: other characters are percent-encoded in a URI);
//    control characters, spaces, Latin-1 and other non-ASCII text are refused, since a raw one
//    either breaks the header (Node refuses it) or is read differently by each browser;
//  - no dot segments ("/./", "/../"), which would leave `within` once the browser resolves them.

export interface RedirectRule {
  /** Where to go when the value is refused. */
  fallback: string
  /** A path prefix the target must stay in: "/admin" allows "/admin", "/admin/…", "/admin?…". */
  within?: string
}

const PLAIN_PATH = /^\/(?![/\\])[\x21-\x7E]*$/
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:[/?#]|$)/

export function localRedirect(value: unknown, rule: RedirectRule): string {
  if (typeof value !== 'string' || value.length > 2048) return rule.fallback
  if (!PLAIN_PATH.test(value) || value.includes('\\')) return rule.fallback
  const path = value.split(/[?#]/, 1)[0]!
  if (DOT_SEGMENT.test(path) || /%2e/i.test(path)) return rule.fallback
  if (rule.within !== undefined && !insidePrefix(value, rule.within)) return rule.fallback
  return value
}

function insidePrefix(value: string, prefix: string): boolean {
  const base = prefix.replace(/\/+$/, '')
  if (!value.startsWith(base)) return false
  const next = value.charAt(base.length)
  return next === '' || next === '/' || next === '?' || next === '#'
}
