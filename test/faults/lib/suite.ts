import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Agent } from './agent-client.js';
import { createNetwork, netnsUnavailable, run, type Network } from './netns.js';
import { startProc, type Proc } from './proc.js';

export const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const BIN = join(ROOT, 'bin', 'mirrorlb.js');
const LOAD = join(ROOT, 'test', 'faults', 'lib', 'load-client.mjs');
const AGENT = join(ROOT, 'test', 'faults', 'lib', 'agent.mjs');
export const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

/** Ports every host uses, as in compose/sim.yml. */
export const PORTS = { superserver: 1972, web: 52773, control: 8080, admin: 9090 } as const;
/** Listen port of each mirror on the balancer host. */
export const MIRROR_PORTS: Readonly<Record<string, number>> = { ap1: 1972, ap2: 11972 };

/**
 * The network of one fault test file plus what every case needs: an agent in `client`
 * (the test's hands inside the network), a scratch directory, and starters for the real
 * processes. Everything is removed in the file's teardown, also when a case fails.
 */
export interface FaultNet {
  readonly net: Network;
  readonly agent: Agent;
  readonly dir: string;
  readonly token: string;
  /** `mirrorlb sim` on `host`, listening like a compose service; resolves once it listens. */
  startSim(t: Test, host: string, role: 'primary' | 'backup'): Promise<Proc>;
  /** `mirrorlb --config` on the `lb` host; resolves once it is started and ready. */
  startBalancer(t: Test, yaml: string, file?: string): Promise<Proc>;
  /** load-client.mjs on the `client` host; resolves once its workers run. */
  startLoad(t: Test, config: Record<string, unknown>): Promise<Proc>;
  /** GET/POST through the agent; never rejects (status 0 and the error text instead). */
  http(
    url: string,
    opts?: { method?: string; body?: string; auth?: boolean; timeoutMs?: number },
  ): Promise<{
    status: number;
    body: string;
  }>;
  /** POST /sim/role or /sim/status on a member's control port; throws unless 200. */
  control(member: string, what: 'role' | 'status', value: string): Promise<void>;
}

let staleChecked = false;

/**
 * The suites run the real bin/mirrorlb.js, which runs dist/: says so (once per process) when
 * a file under src/ is newer than the build, since the run would then test old code.
 */
export function warnIfStale(t: { comment(...args: unknown[]): void }): void {
  if (staleChecked) return;
  staleChecked = true;
  let built: number;
  try {
    built = statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtimeMs;
  } catch {
    t.comment('dist/ is missing: run npx tsc -p tsconfig.json first');
    return;
  }
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  if (newest(join(ROOT, 'src')) > built) {
    t.comment('warning: src/ is newer than dist/; these tests run dist/ (npx tsc -p tsconfig.json)');
  }
}

/** Why the suite cannot run here, or null. Under MIRRORLB_TEST_STRICT=1 the caller fails instead of skipping. */
export async function unavailable(): Promise<string | null> {
  const why = await netnsUnavailable();
  if (why) return why;
  const ipt = await run(['iptables', '--version'], { timeoutMs: 5000 });
  if (ipt.code !== 0) return 'iptables not installed';
  return null;
}

/**
 * Builds the network for a test file, or returns null after registering one skipped test
 * with the reason (a failure instead under MIRRORLB_TEST_STRICT=1).
 */
export async function faultNet(t: Test, hosts: readonly string[]): Promise<FaultNet | null> {
  const why = await unavailable();
  if (why !== null) {
    if (STRICT) t.fail(`fault suite cannot run: ${why}`);
    else t.test(`fault suite (${why})`, { skip: why }, () => undefined);
    return null;
  }
  warnIfStale(t);
  const net = await createNetwork(hosts);
  const dir = mkdtempSync(join(os.tmpdir(), 'mlbt-'));
  const agentPath = join(dir, 'agent.sock');
  const agentProc = startProc('agent', net.wrap('client', [process.execPath, AGENT, agentPath]));
  t.teardown(async () => {
    await agentProc.kill();
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  await agentProc.waitFor((l) => l.msg === 'agent listening', 15_000, 'agent start');
  const agent = new Agent(agentPath);
  const token = `fault-token-${process.pid}`;

  const node = (host: string, args: readonly string[]): string[] =>
    net.wrap(host, [process.execPath, ...args]);
  const http: FaultNet['http'] = async (url, opts = {}) => {
    try {
      const r = await agent.request(url, {
        method: opts.method,
        body: opts.body,
        timeoutMs: opts.timeoutMs ?? 5000,
        headers: opts.auth ? { authorization: `Bearer ${token}` } : {},
      });
      return { status: r.status, body: r.body };
    } catch (e) {
      return { status: 0, body: (e as Error).message };
    }
  };

  return {
    net,
    agent,
    dir,
    token,
    startSim: async (t, host, role) => {
      const p = startProc(
        host,
        node(host, [
          BIN,
          'sim',
          '--name',
          host,
          '--role',
          role,
          '--host',
          '0.0.0.0',
          '--superserver',
          String(PORTS.superserver),
          '--web',
          String(PORTS.web),
          '--control',
          String(PORTS.control),
        ]),
      );
      t.teardown(() => p.kill());
      await p.waitFor((l) => l.msg === 'sim listening', 15_000, 'sim listening');
      return p;
    },
    startBalancer: async (t, yaml, file = join(dir, 'mirrorlb.yml')) => {
      writeFileSync(file, yaml);
      const p = startProc('mirrorlb', node('lb', [BIN, '--config', file]));
      t.teardown(() => p.kill());
      await p.waitFor((l) => l.msg === 'mirrorlb started', 15_000, 'mirrorlb started');
      const deadline = Date.now() + 15_000;
      for (;;) {
        // /readyz is replica readiness; what the cases need is every mirror with a primary.
        const r = await http(`http://lb:${PORTS.admin}/status`, { timeoutMs: 2000 });
        if (r.status === 200 && allAccepting(r.body)) break;
        if (Date.now() > deadline) throw new Error(`balancer not ready: ${r.status} ${r.body}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return p;
    },
    startLoad: async (t, config) => {
      const p = startProc('load', node('client', [LOAD, JSON.stringify(config)]));
      t.teardown(() => p.kill());
      await p.waitFor((l) => l.type === 'ready', 15_000, 'load ready');
      return p;
    },
    http,
    control: async (member, what, value) => {
      const r = await http(`http://${member}:${PORTS.control}/sim/${what}`, { method: 'POST', body: value });
      if (r.status !== 200) throw new Error(`POST ${member} /sim/${what} ${value}: ${r.status} ${r.body}`);
    },
  };
}

/** mirrorlb YAML for mirrors of simulated members on their own hosts. */
export function balancerYaml(
  mirrors: Readonly<Record<string, readonly string[]>>,
  token: string,
  opts: { mirrorExtra?: Readonly<Record<string, string>>; extra?: string } = {},
): string {
  const lines = ['mirrors:'];
  for (const [name, members] of Object.entries(mirrors)) {
    lines.push(`  - name: ${name}`, `    listen: 0.0.0.0:${MIRROR_PORTS[name] ?? 1972}`);
    const extra = opts.mirrorExtra?.[name];
    if (extra) lines.push(...extra.split('\n').map((l) => `    ${l}`));
    lines.push('    members:');
    for (const m of members) {
      lines.push(
        `      - name: ${m}`,
        `        address: ${m}:${PORTS.superserver}`,
        `        check: http://${m}:${PORTS.web}/csp/mirror_status.cxw`,
      );
    }
  }
  lines.push(
    'health:',
    '  expect_body: SUCCESS',
    'admin:',
    `  listen: 0.0.0.0:${PORTS.admin}`,
    `  token: ${token}`,
    'shutdown:',
    '  drain_timeout: 20s',
    '  grace: 0',
  );
  if (opts.extra) lines.push(opts.extra);
  return `${lines.join('\n')}\n`;
}

/** The sessions a load client reported, once it has finished (after "stop"). */
export async function stopLoad(
  load: Proc,
  timeoutMs = 25_000,
): Promise<import('./verdict.js').SessionRecord[]> {
  load.send('stop');
  await load.waitFor((l) => l.type === 'done', timeoutMs, 'load done');
  return load.lines.filter((l) => l.type === 'session') as unknown as import('./verdict.js').SessionRecord[];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every mirror in a /status answer has a primary taking clients. */
function allAccepting(body: string): boolean {
  try {
    const doc = JSON.parse(body) as { mirrors: Array<{ accepting: boolean }> };
    return doc.mirrors.length > 0 && doc.mirrors.every((m) => m.accepting);
  } catch {
    return false;
  }
}
