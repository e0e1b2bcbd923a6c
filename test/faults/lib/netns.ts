import { readdirSync } from 'node:fs';
import { buildBridgeNetwork, filterRestore, must, removeNamespace } from '../../../bench/lib/netns.js';
import { childEnv, nsExec, runCommand } from '../../../bench/lib/proc.js';

/**
 * A throw-away network of hosts built from Linux network namespaces: one namespace per
 * host (`mlbt<pid>-<host>`), each with an `eth0` joined to a bridge that lives in a
 * namespace of its own (`mlbt<pid>-sw`), so nothing is added to the host's own network
 * and two runs never see each other. Host names resolve through a per-namespace
 * /etc/hosts (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts).
 *
 * Owned by the test that created it; `destroy()` (idempotent) kills every process left in
 * its namespaces and removes them. Needs root, iproute2 and (for blackholes) iptables.
 * The bridge and namespaces are built by bench/lib/netns.js (buildBridgeNetwork), as the
 * bench's replicas network is; this file adds the names, the faults and the sweep.
 */

export const PREFIX = 'mlbt';
/** Private range of every run; safe to reuse since each run's namespaces are isolated. */
const SUBNET = '10.231.100';
const ETC_NETNS = '/etc/netns';

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (bounded); never rejects: a timeout is code null, a command that cannot start 127. */
export async function run(
  argv: readonly string[],
  opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const { code, stdout, stderr, error } = await runCommand(argv, {
    input: opts.input ?? '',
    timeoutMs: opts.timeoutMs ?? 15_000,
    env: childEnv(opts.env),
  }).result;
  return error ? { code: 127, stdout, stderr: stderr + error.message } : { code, stdout, stderr };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes namespaces (and /etc/netns entries) left by earlier runs of this suite that died
 * before their teardown: those whose creating process no longer exists.
 */
export async function sweepStale(): Promise<string[]> {
  const listed = (await run(['ip', 'netns', 'list'], { timeoutMs: 5000 })).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '');
  let dirs: string[] = [];
  try {
    dirs = readdirSync(ETC_NETNS);
  } catch {
    // no /etc/netns yet
  }
  const stale = new Set<string>();
  for (const name of [...listed, ...dirs]) {
    const m = new RegExp(`^${PREFIX}(\\d+)-[a-z0-9]+$`).exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) stale.add(name);
  }
  for (const ns of stale) await removeNamespace(ns);
  return [...stale];
}

/** Why this machine cannot build the network (null: it can, as far as can be told cheaply). */
export async function netnsUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root (ip netns needs it)';
  const ip = await run(['ip', 'netns', 'list'], { timeoutMs: 5000 });
  if (ip.code !== 0) return `ip netns unavailable: ${(ip.stderr || `exit ${ip.code}`).trim()}`;
  return null;
}

export interface Network {
  /** `mlbt<pid>`: every namespace name starts with it. */
  readonly id: string;
  readonly hosts: readonly string[];
  ns(host: string): string;
  ip(host: string): string;
  /** argv prefixed to run a command inside `host`'s namespace. */
  wrap(host: string, argv: readonly string[]): string[];
  exec(
    host: string,
    argv: readonly string[],
    opts?: { input?: string; timeoutMs?: number },
  ): Promise<RunResult>;
  /** The host's only link goes down (its processes keep running, unreachable). */
  linkDown(host: string): Promise<void>;
  linkUp(host: string): Promise<void>;
  /** Every packet in or out of the host's eth0 is dropped (no RST, no ICMP); loopback still works. */
  blackhole(host: string): Promise<void>;
  unblackhole(host: string): Promise<void>;
  /** Link up and no firewall rules: undoes linkDown and blackhole (each case starts from here). */
  heal(host: string): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Builds the network: a bridge, one veth pair per host, addresses 10.231.100.(11+i)/24 in
 * the order given, and an /etc/hosts in each namespace naming every host. Removes itself
 * if any step fails.
 */
export async function createNetwork(hosts: readonly string[]): Promise<Network> {
  for (const h of hosts) if (!/^[a-z][a-z0-9]{0,9}$/.test(h)) throw new Error(`bad host name ${h}`);
  await sweepStale();
  const id = `${PREFIX}${process.pid}`;
  const sw = `${id}-sw`;
  const ns = (h: string): string => {
    if (!hosts.includes(h)) throw new Error(`no host ${h} in this network`);
    return `${id}-${h}`;
  };
  const ip = (h: string): string => `${SUBNET}.${11 + hosts.indexOf(h)}`;
  const hostsFile = [
    '127.0.0.1 localhost',
    '::1 localhost ip6-localhost ip6-loopback',
    ...hosts.map((h) => `${ip(h)} ${h}`),
    '',
  ].join('\n');

  const destroy = await buildBridgeNetwork({ sw, hosts, ns, ip, hostsFile });

  const wrap = (h: string, argv: readonly string[]): string[] => nsExec(ns(h), argv);
  const drop = filterRestore(['-A INPUT -i eth0 -j DROP', '-A OUTPUT -o eth0 -j DROP']);
  return {
    id,
    hosts,
    ns,
    ip,
    wrap,
    exec: (h, argv, opts) => run(wrap(h, argv), opts),
    linkDown: async (h) => void (await must(['ip', '-n', ns(h), 'link', 'set', 'eth0', 'down'])),
    linkUp: async (h) => void (await must(['ip', '-n', ns(h), 'link', 'set', 'eth0', 'up'])),
    // One iptables-restore transaction: both directions are dropped from the same instant.
    blackhole: async (h) => void (await must(wrap(h, drop.argv), drop.input)),
    unblackhole: async (h) => void (await must(wrap(h, ['iptables', '-w', '5', '-F']))),
    heal: async (h) => {
      await must(['ip', '-n', ns(h), 'link', 'set', 'eth0', 'up']);
      await must(wrap(h, ['iptables', '-w', '5', '-F']));
    },
    destroy,
  };
}
