/**
 * Checks the schema cannot express: uniqueness across the file, address collisions, URL
 * parsing, duration ranges and the interval ordering. They run even when the schema found
 * problems, on every value that is itself sound, so one run reports everything.
 */
import { DEFAULTS, HEALTH_DURATIONS, isNoIdleTimeout, PROXY_DURATIONS } from './defaults.js';
import { formatDuration, parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { displayPath, isReported, pointer, segments, type Pos } from './positions.js';
import type { ProblemList } from './problems.js';
import { formatHostPort, type HostPort } from './types.js';
import { parseCheckUrl } from './values.js';
import type { YamlTree } from './yaml-tree.js';

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

/** Typed, guarded access to the tree: a value that already has a problem reads as absent. */
class Checker {
  constructor(
    private readonly tree: YamlTree,
    private readonly problems: ProblemList,
  ) {}

  /** The value at ptr, or undefined when absent or already reported. */
  get(ptr: string): unknown {
    return isReported(this.tree.reported, ptr) ? undefined : this.raw(ptr);
  }

  /** Whether the file sets ptr at all, sound or not. */
  present(ptr: string): boolean {
    return this.raw(ptr) !== undefined;
  }

  private raw(ptr: string): unknown {
    let v: unknown = this.tree.root;
    for (const s of segments(ptr)) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, s)) return undefined;
      v = (v as Record<string, unknown>)[s];
    }
    return v;
  }

  str(ptr: string): string | undefined {
    const v = this.get(ptr);
    return typeof v === 'string' ? v : undefined;
  }

  /** Pointers of the items of the list at ptr (none when it is not a list). */
  list(ptr: string): string[] {
    const v = this.get(ptr);
    return Array.isArray(v) ? v.map((_, i) => pointer(ptr, i)) : [];
  }

  has(ptr: string): boolean {
    return this.get(ptr) !== undefined;
  }

  pos(ptr: string): Pos {
    return this.tree.positions.value(ptr);
  }

  /** A problem with the value at ptr, prefixed with its path. */
  report(ptr: string, message: string): void {
    this.problemAt(ptr, `${displayPath(ptr)}: ${message}`);
    this.tree.reported.add(ptr);
  }

  problemAt(ptr: string, message: string): void {
    this.problems.add(this.pos(ptr), message);
  }

  /** Runs a value parser; its error becomes a problem at ptr. */
  parse<T>(ptr: string, parser: (s: string) => T): T | undefined {
    const s = this.str(ptr);
    if (s === undefined) return undefined;
    try {
      return parser(s);
    } catch (e) {
      if (!(e instanceof ConfigValueError)) throw e;
      this.report(ptr, e.message);
      return undefined;
    }
  }
}

function line(c: Checker, ptr: string): string {
  return `line ${c.pos(ptr).line}`;
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
    else c.report(ptr, `duplicate mirror name "${name}" (first at ${line(c, first)})`);
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
        c.report(ptr, `duplicate member name "${name}" (first at ${line(c, first.ptr)})`);
      else {
        const where = `mirror ${mirrorLabel(c, first.mirror)} (${line(c, first.ptr)})`;
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
        c.report(ptr, `${key} is also the address of member "${other}" (${line(c, first.ptr)})`);
      } else {
        const where = `mirror ${mirrorLabel(c, first.mirror)} (${line(c, first.ptr)})`;
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
    taken.push({ label: `${displayPath(ptr)} ${formatHostPort(hp)} (${line(c, ptr)})`, hp });
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
        else if (first.member === member) c.report(u, `the same URL is listed twice (${line(c, first.ptr)})`);
        else {
          const other = c.str(`${first.member}/name`) ?? displayPath(first.member);
          c.report(
            u,
            `member "${other}" checks the same URL (${line(c, first.ptr)}); each member needs its own status URL, ` +
              'not a mirror-aware path that answers for whichever member is primary',
          );
        }
      }
    }
  }
}

function durationPointers(mirrors: string[]): string[] {
  const scopes = ['', ...mirrors];
  return [
    ...scopes.flatMap((s) => HEALTH_DURATIONS.map((k) => `${s}/health/${k}`)),
    ...scopes.flatMap((s) => PROXY_DURATIONS.map((k) => `${s}/proxy/${k}`)),
    '/shutdown/drain_timeout',
  ];
}

function checkDurations(c: Checker, mirrors: string[]): void {
  for (const ptr of durationPointers(mirrors)) c.parse(ptr, parseDuration);
  for (const s of ['', ...mirrors]) {
    const ptr = `${s}/proxy/idle_timeout`;
    if (!isNoIdleTimeout(c.get(ptr))) c.parse(ptr, parseDuration);
  }
}

interface Effective {
  readonly ptr: string | null;
  readonly ms: number;
}

/** A health duration as a mirror sees it: its own, else the top-level one, else the default. */
function effectiveHealth(
  c: Checker,
  scope: string,
  key: 'interval' | 'fast_interval',
): Effective | undefined {
  const candidates = scope === '' ? [`/health/${key}`] : [`${scope}/health/${key}`, `/health/${key}`];
  for (const ptr of candidates) {
    if (!c.present(ptr)) continue;
    const s = c.str(ptr);
    if (s === undefined) return undefined; // already reported: nothing to compare
    try {
      return { ptr, ms: parseDuration(s) };
    } catch {
      return undefined;
    }
  }
  return { ptr: null, ms: parseDuration(DEFAULTS.health[key]) };
}

function checkIntervalOrder(c: Checker, mirrors: string[]): void {
  for (const scope of ['', ...mirrors]) {
    const interval = effectiveHealth(c, scope, 'interval');
    const fast = effectiveHealth(c, scope, 'fast_interval');
    if (!interval || !fast || fast.ms <= interval.ms) continue;
    const local = [fast.ptr, interval.ptr].find(
      (p) => p !== null && (scope === '' || p.startsWith(`${scope}/`)),
    );
    if (local === undefined || local === null) continue; // inherited: the top-level scope reports it once
    const label = (e: Effective, key: string): string =>
      e.ptr === null
        ? `health.${key} ${formatDuration(e.ms)} (the default)`
        : `${displayPath(e.ptr)} ${formatDuration(e.ms)}`;
    const message =
      `${label(fast, 'fast_interval')} is longer than ${label(interval, 'interval')}; ` +
      'the fast interval must not be the slower one';
    c.problemAt(local, message);
  }
}
