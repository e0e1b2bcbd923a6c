/**
 * A mirror's kind when the file does not write it: inferred from its check URLs, so the
 * contract's smallest file (IRIS status pages, no `kind`) gets the IRIS answer rules, under
 * which a Web Gateway's own 503 error page is an unexpected answer, not "not primary".
 */
import type { Checker } from './checker.js';
import { parseCheckUrl } from './check-url.js';
import type { RawMirror } from './keys.js';
import type { MirrorKind } from './types.js';

/** A kind read from one URL, and the part of the URL that says so (null: nothing does). */
export interface UrlKind {
  readonly kind: MirrorKind;
  readonly from: string | null;
}

/**
 * The health-check paths of Patroni's REST API (patroni/api.py, 3.0: the role endpoints of
 * do_GET, with `/` left out as it says nothing), as the last segment of a URL's path: a
 * gateway may put a prefix before it, and a query (`?lag=16MB`, `?tag_x=y`) may follow.
 */
const PATRONI_PATHS = new Set([
  'primary',
  'master',
  'leader',
  'read-write',
  'standby-leader',
  'standby_leader',
  'replica',
  'read-only',
  'sync',
  'synchronous',
  'async',
  'asynchronous',
  'read-only-sync',
  'read-only-synchronous',
]);

/** What one (valid) check URL says about the kind of the member behind it. */
export function kindOfUrl(href: string): UrlKind {
  const path = new URL(href).pathname;
  if (/(^|\/)mirror_status\.cxw$/i.test(path)) return { kind: 'iris', from: 'mirror_status.cxw' };
  const last = path.slice(path.lastIndexOf('/') + 1);
  if (PATRONI_PATHS.has(last)) return { kind: 'patroni', from: `the Patroni REST path /${last}` };
  return { kind: 'generic', from: null };
}

/**
 * The kind of a mirror whose URLs agree (checkInferredKinds refuses the others): that of its
 * first URL of a known kind. A URL of no known kind (a gateway's own path) says nothing, so
 * it neither decides nor disagrees.
 */
export function inferKind(urls: readonly string[]): UrlKind {
  for (const u of urls) {
    const k = kindOfUrl(u);
    if (k.kind !== 'generic') return k;
  }
  return { kind: 'generic', from: null };
}

/** Every check URL of a mirror that passed the checks, normalised. */
export function checkUrls(m: RawMirror): string[] {
  return m.members.flatMap((x) => (typeof x.check === 'string' ? [x.check] : x.check).map(parseCheckUrl));
}

/** How `check` and the start log say what was inferred. */
export function describeInferred(k: UrlKind): string {
  return k.from === null
    ? 'inferred: no check URL is an IRIS or Patroni status path'
    : `inferred from ${k.from}`;
}

function pointsAt(k: UrlKind): string {
  switch (k.kind) {
    case 'iris':
      return `for an IRIS member (${k.from ?? ''})`;
    case 'patroni':
      return `for a Patroni member (${k.from ?? ''})`;
    case 'generic':
      return 'of no known kind';
    default:
      return k.kind satisfies never;
  }
}

/**
 * For each mirror whose kind is not written (on it, or at the top level): every check URL
 * must point at the same kind, else the answer rules would be right for some of them only.
 */
export function checkInferredKinds(c: Checker, mirrors: string[]): void {
  if (c.present('/kind')) return;
  for (const m of mirrors) if (!c.present(`${m}/kind`)) checkMirrorUrlsAgree(c, m);
}

function checkMirrorUrlsAgree(c: Checker, mirror: string): void {
  let first: { ptr: string; said: UrlKind } | null = null;
  for (const member of c.list(`${mirror}/members`)) {
    const ptr = `${member}/check`;
    for (const u of Array.isArray(c.get(ptr)) ? c.list(ptr) : [ptr]) {
      const href = validUrl(c.str(u));
      if (href === null) continue; // reported by the URL check
      const said = kindOfUrl(href);
      if (said.kind === 'generic') continue;
      if (first === null) first = { ptr: u, said };
      else if (said.kind !== first.said.kind) {
        c.report(
          u,
          `this check URL is ${pointsAt(said)}, but the one at ${c.lineOf(first.ptr)} is ${pointsAt(first.said)}; ` +
            "write the mirror's kind (iris, patroni or generic) to say which answer rules apply",
        );
        return;
      }
    }
  }
}

function validUrl(s: string | undefined): string | null {
  if (s === undefined) return null;
  try {
    return parseCheckUrl(s);
  } catch {
    return null;
  }
}
