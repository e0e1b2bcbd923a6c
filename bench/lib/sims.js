// Simulated mirror members as their own processes (`mirrorlb sim`), so the balancer under
// test and the bench's clients do not share an event loop with them. Each has a control
// port that answers in every role, so a crashed or hung member can be revived.
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { start, waitStarted } from './proc.js';
import { BenchError, now } from './util.js';

/** Ports every member uses on its own address, like IRIS (1972/52773) but clear of a local IRIS or demo. */
export const SIM_PORTS = { superserver: 51972, web: 52773, control: 52774 };

/**
 * Whether a TCP connection to host:port opens within `timeoutMs`.
 * @param {string} host
 * @param {number} port
 * @param {number} [timeoutMs]
 * @returns {Promise<boolean>}
 */
export function tcpProbe(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    /** @param {boolean} ok */
    const done = (ok) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * One small HTTP request with a bounded wait; resolves { status, body } or rejects.
 * @param {string} host
 * @param {number} port
 * @param {string} method
 * @param {string} urlPath
 * @param {string | undefined} [body]
 * @param {number} [timeoutMs]
 * @returns {Promise<{ status: number, body: string }>}
 */
export function httpCall(host, port, method, urlPath, body, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, method, path: urlPath, agent: false, timeout: timeoutMs },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new BenchError('MLB_ERR_BENCH_HTTP_TIMEOUT', `${method} ${urlPath} timed out`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts `mirrorlb sim` on `host` and waits until its control port answers.
 * Returns { name, host, ports, proc, setRole(role) -> ms when the role took effect }.
 * @param {{ repoRoot: string, name: string, host: string, role: string, netns?: string | null, cpu?: number | null, logDir: string, ports?: typeof SIM_PORTS }} opts
 */
export async function startSim({ repoRoot, name, host, role, netns, cpu, logDir, ports = SIM_PORTS }) {
  const bin = path.join(repoRoot, 'bin', 'mirrorlb.js');
  const proc = start({
    name: `sim-${name}`,
    cmd: process.execPath,
    args: [
      bin,
      'sim',
      '--name',
      name,
      '--host',
      host,
      '--superserver',
      String(ports.superserver),
      '--web',
      String(ports.web),
      '--control',
      String(ports.control),
      '--role',
      role,
    ],
    netns,
    cpu,
    logDir,
  });
  await waitStarted(
    proc,
    () => tcpProbe(host, ports.control, 300),
    `sim ${name} on ${host}:${ports.control}`,
    15_000,
    'MLB_ERR_BENCH_SIM',
  );
  return {
    name,
    host,
    ports,
    proc,
    address: `${host}:${ports.superserver}`,
    checkUrl: `http://${host}:${ports.web}/csp/mirror_status.cxw`,
    /**
     * Sets the role; resolves with the time the sim acknowledged it. The sim applies the role
     * as soon as its answer is written, so this is at or just after the change.
     */
    /** @param {string} next */
    async setRole(next) {
      const r = await httpCall(host, ports.control, 'POST', '/sim/role', next);
      const at = now();
      if (r.status !== 200)
        throw new BenchError('MLB_ERR_BENCH_SIM', `sim ${name}: role ${next} refused: ${r.body}`);
      return at;
    },
  };
}
