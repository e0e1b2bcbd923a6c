/**
 * Checks the schema cannot express: uniqueness across the file, address collisions, a
 * member that is mirrorlb itself, URL parsing (here), check URLs agreeing on an unwritten kind
 * (kind.ts), the TLS files of the checks (tls.ts); the row sections' durations, interval
 * ordering and sanity bounds (sections.ts), whose converted values it returns. They run
 * even when the schema found problems, on every value that is itself sound, so one run
 * reports everything.
 */
import { Checker } from './checker.js';
import { parseCheckUrl } from './check-url.js';
import { DEFAULTS } from './keys.js';
import { checkInferredKinds, inferKind } from './kind.js';
import { checkPools } from './pools.js';
import type { MirrorKind } from './types.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { isWildcard, reachesListener } from './local-address.js';
import { displayPath } from './yaml/positions.js';
import type { ProblemList } from './problems.js';
import { readSections, type SectionValues } from './sections.js';
import { checkTls, type MemberTls } from './tls.js';
import { formatHostPort, type HostPort } from './types.js';
import type { YamlTree } from './yaml/yaml-tree.js';
import { hasReusePort, REUSE_PORT_NEEDED } from '../workers/support.js';

/** What the semantic checks converted or read, for the build. */
export interface Checked {
  readonly sections: SectionValues;
  readonly tls: MemberTls;
}

export function checkSemantics(tree: YamlTree, problems: ProblemList): Checked {
  const c = new Checker(tree, problems);
  const mirrors = c.list('/mirrors');
  checkMirrorNames(c, mirrors);
  checkMemberNames(c, mirrors);
  checkMemberAddresses(c, mirrors);
  checkListens(c, mirrors);
  checkSelfProxy(c, mirrors);
  checkCheckUrls(c, mirrors);
  checkInferredKinds(c, mirrors);
  checkWorkers(c);
  checkPools(c, mirrors, (m) => kindOf(c, m));
  const tls = checkTls(c, mirrors, problems.file);
  return { sections: readSections(c, mirrors), tls };
}

/** More than one loop needs listeners that share a port (reusePort), which older Node lacks. */
function checkWorkers(c: Checker): void {
  const n = c.get('/workers');
  if (typeof n === 'number' && n > 1 && !hasReusePort())
    c.report(
      '/workers',
      `${n} loops need reusePort listeners, which Node.js ${process.versions.node} lacks: run ${REUSE_PORT_NEEDED}, or set workers: 1`,
    );
}

/** The kind a mirror will have: written, else its first check URL of a known kind says (kind.ts). */
function kindOf(c: Checker, m: string): MirrorKind | undefined {
  const written = c.str(`${m}/kind`) ?? c.str('/kind');
  if (written !== undefined) return written as MirrorKind;
  const urls: string[] = [];
  for (const member of c.list(`${m}/members`)) {
    const check = c.get(`${member}/check`);
    for (const u of Array.isArray(check) ? check : [check]) if (typeof u === 'string') urls.push(u);
  }
  try {
    return inferKind(urls).kind;
  } catch {
    return undefined;
  }
}

function mirrorLabel(c: Checker, mirror: string): string {
  const name = c.str(`${mirror}/name`);
  return name === undefined ? displayPath(mirror) : `"${name}"`;
}

function checkMirrorNames(c: Checker, mirrors: string[]): void {
  const seen = new Map<string, string>();
  for (const m of mirrors) {
    const ptr = `${m}/name`;
    const name = c.str(ptr);
    if (name === undefined) continue;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, ptr);
    else c.report(ptr, `duplicate mirror name "${name}" (first at ${c.lineOf(first)})`);
  }
}

function checkMemberNames(c: Checker, mirrors: string[]): void {
  const seen = new Map<string, { ptr: string; mirror: string }>();
  for (const m of mirrors) {
    for (const member of c.list(`${m}/members`)) {
      const ptr = `${member}/name`;
      const name = c.str(ptr);
      if (name === undefined) continue;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, { ptr, mirror: m });
      else if (first.mirror === m)
        c.report(ptr, `duplicate member name "${name}" (first at ${c.lineOf(first.ptr)})`);
      else {
        const where = `mirror ${mirrorLabel(c, first.mirror)} (${c.lineOf(first.ptr)})`;
        c.report(
          ptr,
          `member name "${name}" is already used in ${where}; member names are unique across mirrors`,
        );
      }
    }
  }
}

/**
 * A member address must be a database, never mirrorlb's own listener: pointed at its own
 * mirror, one client becomes a storm of sessions proxying to themselves (unbounded with the
 * default max_connections). The admin listener and other mirrors' listeners are refused
 * too: neither is a database either.
 */
function checkSelfProxy(c: Checker, mirrors: string[]): void {
  const listeners: { ptr: string | null; label: string; hp: HostPort; mirror: string | null }[] = [];
  const admin = c.has('/admin/listen') ? c.parse('/admin/listen', parseListenAddress) : undefined;
  if (c.has('/admin/listen')) {
    if (admin) listeners.push({ ptr: '/admin/listen', label: 'admin.listen', hp: admin, mirror: null });
  } else if (!c.present('/admin/listen')) {
    const hp = parseHostPort(DEFAULTS.admin.listen);
    listeners.push({ ptr: null, label: `admin.listen (default ${DEFAULTS.admin.listen})`, hp, mirror: null });
  }
  for (const m of mirrors) {
    const hp = c.parse(`${m}/listen`, parseListenAddress);
    if (hp)
      listeners.push({
        ptr: `${m}/listen`,
        label: `the listen address of mirror ${mirrorLabel(c, m)}`,
        hp,
        mirror: m,
      });
  }
  for (const m of mirrors) {
    for (const member of c.list(`${m}/members`)) {
      const ptr = `${member}/address`;
      const hp = c.parse(ptr, parseHostPort);
      if (hp === undefined) continue;
      if (isWildcard(hp.host)) {
        c.report(
          ptr,
          `${hp.host} means "every address" to a listener; as a member address it reaches this machine, ` +
            "not a database: write the member's own host name or address",
        );
        continue;
      }
      const hit = listeners.find((l) => reachesListener(hp, l.hp));
      if (hit === undefined) continue;
      const where = hit.ptr === null ? '' : ` (${c.lineOf(hit.ptr)})`;
      const own =
        hit.mirror === m
          ? 'its own mirror: every client would be proxied back into mirrorlb, without end'
          : 'mirrorlb itself, not a database';
      c.report(ptr, `${formatHostPort(hp)} is ${hit.label}${where}, so this member is ${own}`);
    }
  }
}

function hostKey(hp: HostPort): string {
  return formatHostPort({ host: hp.host.toLowerCase(), port: hp.port });
}

function checkMemberAddresses(c: Checker, mirrors: string[]): void {
  const seen = new Map<string, { ptr: string; mirror: string }>();
  for (const m of mirrors) {
    for (const member of c.list(`${m}/members`)) {
      const ptr = `${member}/address`;
      const hp = c.parse(ptr, parseHostPort);
      if (hp === undefined) continue;
      const key = hostKey(hp);
      const first = seen.get(key);
      if (first === undefined) seen.set(key, { ptr, mirror: m });
      else if (first.mirror === m) {
        const other = c.str(first.ptr.replace(/address$/, 'name')) ?? displayPath(first.ptr);
        c.report(ptr, `${key} is also the address of member "${other}" (${c.lineOf(first.ptr)})`);
      } else {
        const where = `mirror ${mirrorLabel(c, first.mirror)} (${c.lineOf(first.ptr)})`;
        c.report(ptr, `${key} is already a member address in ${where}; a member belongs to one mirror`);
      }
    }
  }
}

/** Two listeners conflict on the same port when their hosts are equal or either is a wildcard. */
export function listensCollide(a: HostPort, b: HostPort): boolean {
  // Port 0 asks the system for a free port: such listeners never collide.
  if (a.port !== b.port || a.port === 0) return false;
  return a.host.toLowerCase() === b.host.toLowerCase() || isWildcard(a.host) || isWildcard(b.host);
}

function checkListens(c: Checker, mirrors: string[]): void {
  const taken: { label: string; hp: HostPort }[] = [];
  const listens = mirrors.flatMap((m) => [`${m}/listen`, ...c.list(`${m}/pools`).map((p) => `${p}/listen`)]);
  if (c.has('/admin/listen')) listens.push('/admin/listen');
  else
    taken.push({
      label: `admin.listen (default ${DEFAULTS.admin.listen})`,
      hp: parseHostPort(DEFAULTS.admin.listen),
    });
  listens.sort((a, b) => c.pos(a).line - c.pos(b).line || c.pos(a).col - c.pos(b).col);
  for (const ptr of listens) {
    const hp = c.parse(ptr, parseListenAddress);
    if (hp === undefined) continue;
    const clash = taken.find((t) => listensCollide(t.hp, hp));
    if (clash) c.report(ptr, `${formatHostPort(hp)} collides with ${clash.label}`);
    taken.push({ label: `${displayPath(ptr)} ${formatHostPort(hp)} (${c.lineOf(ptr)})`, hp });
  }
}

function checkCheckUrls(c: Checker, mirrors: string[]): void {
  const seen = new Map<string, { ptr: string; member: string }>();
  for (const m of mirrors) {
    for (const member of c.list(`${m}/members`)) {
      const ptr = `${member}/check`;
      const urls = Array.isArray(c.get(ptr)) ? c.list(ptr) : [ptr];
      for (const u of urls) {
        const href = c.parse(u, parseCheckUrl);
        if (href === undefined) continue;
        const first = seen.get(href);
        if (first === undefined) seen.set(href, { ptr: u, member });
        else if (first.member === member)
          c.report(u, `the same URL is listed twice (${c.lineOf(first.ptr)})`);
        else {
          const other = c.str(`${first.member}/name`) ?? displayPath(first.member);
          c.report(
            u,
            `member "${other}" checks the same URL (${c.lineOf(first.ptr)}); each member needs its own status URL, ` +
              'not a mirror-aware path that answers for whichever member is primary',
          );
        }
      }
    }
  }
}
