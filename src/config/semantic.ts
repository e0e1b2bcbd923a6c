/**
 * Checks the schema cannot express: uniqueness across the file, address collisions, URL
 * parsing (here), duration ranges and the interval ordering (timing.ts). They run even when
 * the schema found problems, on every value that is itself sound, so one run reports everything.
 */
import { Checker } from './checker.js';
import { DEFAULTS } from './defaults.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { displayPath } from './yaml/positions.js';
import type { ProblemList } from './problems.js';
import { checkDurations, checkIntervalOrder } from './timing.js';
import { formatHostPort, type HostPort } from './types.js';
import { parseCheckUrl } from './values.js';
import type { YamlTree } from './yaml/yaml-tree.js';

export function checkSemantics(tree: YamlTree, problems: ProblemList): void {
  const c = new Checker(tree, problems);
  const mirrors = c.list('/mirrors');
  checkMirrorNames(c, mirrors);
  checkMemberNames(c, mirrors);
  checkMemberAddresses(c, mirrors);
  checkListens(c, mirrors);
  checkCheckUrls(c, mirrors);
  checkDurations(c, mirrors);
  checkIntervalOrder(c, mirrors);
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

const WILDCARDS = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

/** Two listeners conflict on the same port when their hosts are equal or either is a wildcard. */
export function listensCollide(a: HostPort, b: HostPort): boolean {
  // Port 0 asks the system for a free port: such listeners never collide.
  if (a.port !== b.port || a.port === 0) return false;
  return a.host.toLowerCase() === b.host.toLowerCase() || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

function checkListens(c: Checker, mirrors: string[]): void {
  const taken: { label: string; hp: HostPort }[] = [];
  const listens = mirrors.map((m) => `${m}/listen`);
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
