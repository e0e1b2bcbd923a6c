/** What `mirrorlb check` prints for a valid config, and the warnings a valid config can still earn. */
import { formatDuration } from './duration.js';
import { describeInferred, inferKind } from './kind.js';
import { isLoopback } from './local-address.js';
import {
  formatHostPort,
  type Config,
  type HealthConfig,
  type MirrorConfig,
  type ProxyConfig,
} from './types.js';

/** One screen: each mirror with its listen address, members, check URLs and key timings. */
export function summarize(config: Config): string {
  const members = config.mirrors.reduce((n, m) => n + m.members.length, 0);
  const lines = [
    `${config.source}: OK, ${plural(config.mirrors.length, 'mirror')}, ${plural(members, 'member')}`,
    '',
    ...config.mirrors.flatMap(mirrorLines),
    `admin     ${formatHostPort(config.admin.listen)} (${config.admin.token === null ? 'no token' : 'token set'})`,
    `log       ${config.log.level}`,
    `shutdown  grace ${formatDuration(config.shutdown.graceMs)}, drain ${formatDuration(config.shutdown.drainTimeoutMs)}`,
  ];
  return `${lines.join('\n')}\n`;
}

function mirrorLines(m: MirrorConfig): string[] {
  const width = Math.max(...m.members.map((x) => x.name.length));
  const addrWidth = Math.max(...m.members.map((x) => formatHostPort(x.address).length));
  return [
    `mirror ${m.name}  listen ${formatHostPort(m.listen)}  on_conflict ${m.onConflict}`,
    ...m.members.flatMap((x) =>
      x.check.map((url, i) =>
        i === 0
          ? `  ${x.name.padEnd(width)}  ${formatHostPort(x.address).padEnd(addrWidth)}  ${url}`
          : `  ${''.padEnd(width)}  ${''.padEnd(addrWidth)}  ${url}`,
      ),
    ),
    `  health  ${healthLine(m.health)}`,
    `  kind    ${kindLine(m)}`,
    `  proxy   ${proxyLine(m.proxy)}`,
    '',
  ];
}

/** The kind, and when the file does not write it, what it was inferred from. */
export function kindLine(m: MirrorConfig): string {
  if (m.kindSource === 'written') return m.kind;
  return `${m.kind} (${describeInferred(inferKind(m.members.flatMap((x) => x.check)))})`;
}

function healthLine(h: HealthConfig): string {
  const body = (b: readonly string[]): string =>
    b.length === 0 ? '' : ` with ${b.map((x) => JSON.stringify(x)).join(' or ')}`;
  const also = h.expectBodyAll.map((x) => ` and ${JSON.stringify(x)}`).join('');
  const fence = h.fenceAfterMs === null ? 'off' : formatDuration(h.fenceAfterMs);
  return (
    `every ${formatDuration(h.intervalMs)} (${formatDuration(h.fastIntervalMs)} for ` +
    `${formatDuration(h.fastWindowMs)} after a change), timeout ${formatDuration(h.timeoutMs)}, ` +
    `rise ${h.rise}, fall ${h.fall}, primary = ${h.expectStatus}${body(h.expectBody)}${also}, ` +
    `not primary = ${h.notPrimaryStatus.join(' or ')}${body(h.notPrimaryBody)}, fence after ${fence}`
  );
}

function proxyLine(p: ProxyConfig): string {
  const max = p.maxConnections === 0 ? 'unlimited' : String(p.maxConnections);
  const idle = p.idleTimeoutMs === 0 ? 'off' : formatDuration(p.idleTimeoutMs);
  const connecting = p.maxConnecting === 0 ? 'unbounded' : `at most ${p.maxConnecting} per member`;
  return (
    `connect ${formatDuration(p.connectTimeoutMs)} (${connecting} at once), hold ${formatDuration(p.holdTimeoutMs)} ` +
    `(at most ${p.maxHeld} held), sessions ${max}, idle timeout ${idle}`
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Sound but risky settings, one sentence each. */
export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  const admin = config.admin;
  if (admin.token === null && !isLoopback(admin.listen.host)) {
    out.push(
      `admin listens on ${formatHostPort(admin.listen)} without admin.token: ` +
        'maintenance actions (drain, disable, enable) are refused with 403 until a token is set',
    );
  }
  for (const m of config.mirrors) {
    if (m.members.length === 1) {
      out.push(`mirror "${m.name}" has only one member: there is nothing to fail over to`);
    }
  }
  return out;
}
