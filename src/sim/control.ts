import type http from 'node:http';
import type { Logger } from 'pino';
import { isSimRole, parseStatusMode, SIM_ROLES, SimError, type SimRole, type StatusMode } from './types.js';

/** What the control requests change on a simulated member (member.ts). */
export interface ControlTarget {
  readonly role: SimRole;
  readonly statusMode: StatusMode;
  lagBytes: number;
  readonly logger: Logger;
  setRole(role: SimRole): Promise<void>;
  setStatusMode(mode: StatusMode, delayMs?: number): void;
}

/**
 * `/sim/*` of a simulated member: read or change its role (`/sim/role`), its status page's
 * failure mode (`/sim/status`) and, for a replica, its lag (`/sim/lag`, bytes).
 */
export function handleControl(sim: ControlTarget, req: http.IncomingMessage, res: http.ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/sim/lag' && req.method === 'POST') {
    readBody(req, 64).then(
      (body) => {
        const n = Number(body.trim());
        if (!Number.isInteger(n) || n < 0) return reply(res, 400, 'lag must be a whole number of bytes\n');
        sim.lagBytes = n;
        reply(res, 200, `${n}\n`);
      },
      () => reply(res, 413, 'body too large\n'),
    );
    return;
  }
  if (path !== '/sim/role' && path !== '/sim/status') {
    reply(res, 404, 'not found\n');
    return;
  }
  if (req.method === 'GET') {
    reply(res, 200, path === '/sim/role' ? `${sim.role}\n` : `${sim.statusMode}\n`);
    return;
  }
  if (req.method !== 'POST') {
    reply(res, 405, 'method not allowed\n');
    return;
  }
  readBody(req, 1024).then(
    (body) => (path === '/sim/role' ? postRole(sim, res, body) : postStatus(sim, res, body)),
    () => reply(res, 413, 'body too large\n'),
  );
}

function postRole(sim: ControlTarget, res: http.ServerResponse, body: string): void {
  const role = body.trim();
  if (!isSimRole(role)) {
    reply(res, 400, `role must be one of ${SIM_ROLES.join('|')}\n`);
    return;
  }
  // Answer first: going 'down' or 'dead' destroys the very socket this request came on.
  res.setHeader('Connection', 'close');
  reply(res, 200, `${role}\n`);
  res.on('finish', () => {
    sim.setRole(role).catch((err: unknown) => sim.logger.error({ err }, 'sim could not change role'));
  });
}

function postStatus(sim: ControlTarget, res: http.ServerResponse, body: string): void {
  const parsed = parseStatusMode(body);
  if (!parsed) {
    reply(res, 400, 'status must be normal|dead|slow:<ms>|garbage|huge|redirect\n');
    return;
  }
  res.setHeader('Connection', 'close');
  reply(res, 200, `${body.trim()}\n`);
  res.on('finish', () => sim.setStatusMode(parsed.mode, parsed.delayMs));
}

export function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.destroy();
        reject(new SimError('MLB_ERR_SIM_BODY', 'body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
