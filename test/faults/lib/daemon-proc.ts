import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { SimMember } from '../../../src/sim/member.js';
import { startProc, type Proc } from './proc.js';
import { BIN, warnIfStale } from './suite.js';

/**
 * The real daemon as its own process on loopback (no namespaces, no root), for the hostile
 * input tests: bounded process, free ports, and readings of its file descriptors and memory.
 */

/** A free loopback port (bound, then released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface DaemonProc {
  readonly proc: Proc;
  readonly port: Readonly<Record<string, number>>;
  readonly adminPort: number;
  /** Open file descriptors of the process now. */
  fds(): number;
  /** Resident memory in KiB now. */
  rssKb(): number;
}

/**
 * Starts `mirrorlb --config` for mirrors of in-process sims, each mirror on a free port;
 * `nofile` runs it under `ulimit -n` (a limit lowered by its own shell, no root needed).
 */
export async function startDaemonProc(
  t: Test,
  mirrors: Readonly<Record<string, readonly SimMember[]>>,
  opts: { token?: string; extra?: string; nofile?: number } = {},
): Promise<DaemonProc> {
  warnIfStale(t);
  const port: Record<string, number> = {};
  const lines = ['mirrors:'];
  for (const [name, members] of Object.entries(mirrors)) {
    port[name] = await freePort();
    lines.push(`  - name: ${name}`, `    listen: 127.0.0.1:${port[name]}`, '    members:');
    for (const m of members) {
      lines.push(
        `      - name: ${m.name}`,
        `        address: 127.0.0.1:${m.superserverPort}`,
        `        check: http://127.0.0.1:${m.webPort}/csp/mirror_status.cxw`,
      );
    }
  }
  const adminPort = await freePort();
  lines.push('admin:', `  listen: 127.0.0.1:${adminPort}`);
  if (opts.token) lines.push(`  token: ${opts.token}`);
  lines.push('shutdown:', '  drain_timeout: 1s', '  grace: 0');
  if (opts.extra) lines.push(opts.extra);
  const file = join(mkdtempSync(join(os.tmpdir(), 'mlb-hostile-')), 'mirrorlb.yml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const argv =
    opts.nofile === undefined
      ? [process.execPath, BIN, '--config', file]
      : ['bash', '-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, BIN, '--config', file];
  const proc = startProc('mirrorlb', argv);
  t.teardown(() => proc.kill());
  await proc.waitFor((l) => l.msg === 'mirrorlb started', 15_000, 'mirrorlb started');
  return {
    proc,
    port,
    adminPort,
    fds: () => readdirSync(`/proc/${proc.pid}/fd`).length,
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1] ?? NaN),
  };
}

/** Sum of a metric's samples whose labels include `labels` (0 when none). */
export function metric(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
