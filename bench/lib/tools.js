// The Debian tools the bench drives. A missing tool is installed with apt-get only when the
// bench runs as root and apt-get exists; otherwise the parts needing it are skipped, with
// the reason in the output.
import { has, run } from './proc.js';
import { log } from './util.js';

/**
 * command -> Debian package
 * @type {Record<string, string>}
 */
export const TOOLS = {
  haproxy: 'haproxy',
  nginx: 'nginx',
  wrk: 'wrk',
  iperf3: 'iperf3',
  sockperf: 'sockperf',
  curl: 'curl',
  taskset: 'util-linux',
  ip: 'iproute2',
  iptables: 'iptables',
};

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Returns { available: {cmd: bool}, installed: [pkg], missing: {cmd: reason} }.
 * `install` false (or not root, or no apt-get) never touches the system.
 * @param {string[]} cmds
 * @param {{ install?: boolean }} [opts]
 * @returns {Promise<import('./util.js').BenchContext['tools']>}
 */
export async function ensureTools(cmds, { install = true } = {}) {
  const missing = cmds.filter((c) => !has(c));
  const installed = [];
  if (missing.length > 0 && install && isRoot && has('apt-get')) {
    const pkgs = [...new Set(missing.map((c) => TOOLS[c]).filter(Boolean))];
    log(`bench: installing ${pkgs.join(' ')} with apt-get (missing: ${missing.join(' ')})`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update', '-qq'], { env, timeoutMs: 600_000 }).catch(() => null);
    const r = await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], {
      env,
      timeoutMs: 900_000,
    }).catch((err) => ({ code: -1, stderr: err.message }));
    if (r.code !== 0)
      log(`bench: apt-get install failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    else installed.push(...pkgs);
    // Debian starts packaged daemons; the bench runs its own copies with their own configs.
    for (const svc of ['haproxy', 'nginx']) {
      if (pkgs.includes(svc)) await run('service', [svc, 'stop'], { timeoutMs: 30_000 }).catch(() => null);
    }
  }
  /** @type {Record<string, boolean>} */
  const available = {};
  /** @type {Record<string, string>} */
  const why = {};
  for (const c of cmds) {
    available[c] = has(c);
    if (!available[c]) {
      why[c] = !isRoot
        ? `${c} not found (not root, so not installed; apt-get install ${TOOLS[c] ?? c})`
        : !has('apt-get')
          ? `${c} not found and no apt-get to install it`
          : `${c} not found and apt-get could not install ${TOOLS[c] ?? c}`;
    }
  }
  return { available, installed, missing: why };
}

export { isRoot };
