// The members' network namespace: every simulated member gets its own address behind a veth
// pair, so "primary blackholed" can drop one member's packets (iptables DROP inside the
// namespace, never on the host) the way a network partition would. Needs root and ip netns.
// filterRestore is shared with the fault suite's network (test/faults/lib/netns.ts).
import { has, onInterrupt, run } from './proc.js';
import { isRoot } from './tools.js';

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
