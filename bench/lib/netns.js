// Network namespaces, for the bench and the fault suite (test/faults/lib/netns.ts).
//
// createMemberNetns: the members' namespace of the failover and storm parts: every
// simulated member gets its own address behind a veth pair, so "primary blackholed" can
// drop one member's packets (iptables DROP inside the namespace, never on the host) the way
// a network partition would.
//
// buildBridgeNetwork: one namespace per host on a bridge of its own, the network of the
// replicas part (bench/lib/replicas.js) and of the fault suite.
//
// Everything here needs root and ip netns.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { childEnv, has, onInterrupt, run, runCommand } from './proc.js';
import { isRoot } from './tools.js';

const ETC_NETNS = '/etc/netns';

/**
 * Runs a setup command (bounded, 15 s); resolves with its stdout, rejects with its stderr
 * when it fails.
 * @param {readonly string[]} argv
 * @param {string} [input]
 * @returns {Promise<string>}
 */
export async function must(argv, input) {
  const r = await runCommand(argv, { input: input ?? '', timeoutMs: 15_000, env: childEnv() }).result;
  const code = r.error ? 127 : r.code;
  if (code !== 0)
    throw new Error(
      `${argv.join(' ')}: ${(r.stderr + (r.error?.message ?? '') || r.stdout).trim() || `exit ${code}`}`,
    );
  return r.stdout;
}

/**
 * Kills (SIGKILL, by id) whatever still runs inside `ns`: processes its owner started there.
 * @param {string} ns
 */
export async function killInside(ns) {
  const r = await runCommand(['ip', 'netns', 'pids', ns], { input: '', timeoutMs: 5000, env: childEnv() })
    .result;
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Kills what runs inside `ns`, deletes it and its /etc/netns entry (if any); never fails.
 * @param {string} ns
 */
export async function removeNamespace(ns) {
  await killInside(ns);
  await runCommand(['ip', 'netns', 'del', ns], { input: '', timeoutMs: 10_000, env: childEnv() }).result;
  rmSync(`${ETC_NETNS}/${ns}`, { recursive: true, force: true });
}

/**
 * @typedef {object} BridgeSpec
 * @property {string} sw the namespace that holds the bridge (br0)
 * @property {readonly string[]} hosts
 * @property {(h: string) => string} ns each host's namespace
 * @property {(h: string) => string} ip each host's address, on a /24 shared by all
 * @property {string} [hostsFile] /etc/hosts inside every namespace (via /etc/netns/<ns>/hosts,
 *   which `ip netns exec` bind-mounts)
 * @property {{ veth: string, ip: string }} [join] a veth of this process's own namespace
 *   joined to the bridge, with this address: the outside world of the network
 */

/**
 * Builds a bridge (in its own namespace `sw`) and one namespace per host whose only link,
 * `eth0`, is a veth into it, with the host's address. Resolves with its idempotent
 * `destroy()`, which kills every process left inside and removes every namespace (and the
 * joined veth); removes what it made if any step fails.
 * @param {BridgeSpec} spec
 * @returns {Promise<() => Promise<void>>}
 */
export async function buildBridgeNetwork({ sw, hosts, ns, ip, hostsFile, join }) {
  const all = [sw, ...hosts.map(ns)];
  /** @type {Promise<void> | null} */
  let destroyed = null;
  const destroy = () =>
    (destroyed ??= (async () => {
      for (const n of all) await killInside(n);
      for (const n of all) await removeNamespace(n);
      if (join)
        await runCommand(['ip', 'link', 'del', join.veth], { input: '', timeoutMs: 10_000, env: childEnv() })
          .result;
    })());
  try {
    for (const n of all) {
      await must(['ip', 'netns', 'add', n]);
      if (hostsFile !== undefined) {
        mkdirSync(`${ETC_NETNS}/${n}`, { recursive: true });
        writeFileSync(`${ETC_NETNS}/${n}/hosts`, hostsFile);
      }
    }
    const swCmds = ['link set lo up', 'link add br0 type bridge', 'link set br0 up'];
    hosts.forEach((h, i) => {
      swCmds.push(`link add v${i} type veth peer name eth0 netns ${ns(h)}`, `link set v${i} master br0 up`);
    });
    await must(['ip', '-n', sw, '-b', '-'], `${swCmds.join('\n')}\n`);
    for (const h of hosts) {
      const cmds = ['link set lo up', `addr add ${ip(h)}/24 dev eth0`, 'link set eth0 up'];
      await must(['ip', '-n', ns(h), '-b', '-'], `${cmds.join('\n')}\n`);
    }
    if (join) {
      await must(['ip', 'link', 'add', join.veth, 'type', 'veth', 'peer', 'name', 'vhost', 'netns', sw]);
      await must(['ip', '-n', sw, 'link', 'set', 'vhost', 'master', 'br0', 'up']);
      await must(['ip', 'addr', 'add', `${join.ip}/24`, 'dev', join.veth]);
      await must(['ip', 'link', 'set', join.veth, 'up']);
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  return destroy;
}

/**
 * iptables-restore for `rules` (lines such as `-A INPUT -i eth0 -j DROP`) added to the
 * filter table in one transaction, so every rule is in force from the same instant; `-w 5`
 * waits for the xtables lock another run may hold rather than failing at once.
 * @param {readonly string[]} rules
 * @returns {{ argv: string[], input: string }}
 */
export function filterRestore(rules) {
  return {
    argv: ['iptables-restore', '-w', '5', '--noflush'],
    input: ['*filter', ...rules, 'COMMIT', ''].join('\n'),
  };
}

/**
 * @typedef {object} MemberNetns
 * @property {string} ns
 * @property {string} hostIp the host's end of the veth pair
 * @property {string[]} ips one address per member, inside the namespace
 * @property {(ip: string, ports: readonly number[]) => Promise<void>} blackhole
 * @property {(ip: string, ports: readonly number[]) => Promise<void>} restore
 * @property {() => Promise<void>} teardown
 * @property {undefined} [skipped] (so that `netns.skipped` tells the two answers apart)
 */

/**
 * @param {string[]} args
 * @param {import('./proc.js').RunOptions} [opts]
 */
async function sh(args, opts) {
  const [cmd = '', ...rest] = args;
  const r = await run(cmd, rest, { timeoutMs: 15_000, ...opts });
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/**
 * Creates the namespace with `count` member addresses, or says why it cannot.
 * @param {number} count
 * @returns {Promise<MemberNetns | { skipped: string }>}
 */
export async function createMemberNetns(count) {
  if (!isRoot) return { skipped: 'not root (ip netns and iptables need it)' };
  if (!has('ip')) return { skipped: 'no ip command (iproute2)' };
  if (!has('iptables')) return { skipped: 'no iptables' };
  const tag = process.pid % 100000;
  const ns = `mlbbench${tag}`;
  const vh = `mlbh${tag}`;
  const vn = `mlbn${tag}`;
  const routes = (await run('ip', ['-4', 'route'], { timeoutMs: 5000 }).catch(() => ({ stdout: '' }))).stdout;
  let octet = 20 + (process.pid % 200);
  while (routes.includes(`10.231.${octet}.`)) octet = 20 + ((octet + 1) % 200);
  const net = `10.231.${octet}`;
  const hostIp = `${net}.1`;
  const ips = Array.from({ length: count }, (_, i) => `${net}.${11 + i}`);
  // One teardown, whoever asks first (the part's finally or an interrupt); both wait for it.
  /** @type {Promise<void> | null} */
  let tearing = null;
  /** @returns {Promise<void>} */
  const teardown = () =>
    (tearing ??= (async () => {
      await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 }).catch(() => null);
      await run('ip', ['link', 'del', vh], { timeoutMs: 10_000 }).catch(() => null);
      unregister();
    })());
  const unregister = onInterrupt(teardown);
  try {
    await sh(['ip', 'netns', 'add', ns]);
    await sh(['ip', 'link', 'add', vh, 'type', 'veth', 'peer', 'name', vn]);
    await sh(['ip', 'link', 'set', vn, 'netns', ns]);
    await sh(['ip', 'addr', 'add', `${hostIp}/24`, 'dev', vh]);
    await sh(['ip', 'link', 'set', vh, 'up']);
    await sh(['ip', 'link', 'set', 'lo', 'up'], { netns: ns });
    for (const ip of ips) await sh(['ip', 'addr', 'add', `${ip}/24`, 'dev', vn], { netns: ns });
    await sh(['ip', 'link', 'set', vn, 'up'], { netns: ns });
    await sh(['iptables', '-w', '-L', 'INPUT', '-n'], { netns: ns });
  } catch (err) {
    await teardown();
    return {
      skipped: `cannot set up a network namespace: ${String(err instanceof Error ? err.message : err).split('\n')[0]}`,
    };
  }
  /** @type {(ip: string, ports: readonly number[]) => string[][]} */
  const rules = (ip, ports) => [
    ['INPUT', '-d', ip, '-p', 'tcp', '-m', 'multiport', '--dports', ports.join(','), '-j', 'DROP'],
    ['OUTPUT', '-s', ip, '-p', 'tcp', '-m', 'multiport', '--sports', ports.join(','), '-j', 'DROP'],
  ];
  return {
    ns,
    hostIp,
    ips,
    /**
     * Drops every packet to and from these ports of `ip` (its control port still works), both
     * directions in one iptables-restore transaction; resolves once the rules are in force.
     */
    blackhole: async (ip, ports) => {
      const { argv, input } = filterRestore(rules(ip, ports).map((r) => `-I ${r.join(' ')}`));
      const [cmd = '', ...args] = argv;
      const r = await run(cmd, args, { netns: ns, input, timeoutMs: 15_000 });
      if (r.code !== 0) throw new Error(`iptables-restore: ${r.stderr.trim()}`);
    },
    restore: async (ip, ports) => {
      for (const r of rules(ip, ports))
        await sh(['iptables', '-w', '-D', ...r], { netns: ns }).catch(() => null);
    },
    teardown,
  };
}
