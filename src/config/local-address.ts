/**
 * Whether a member address would reach mirrorlb itself: the check that keeps a member from
 * being its own mirror's listener (one client would then proxy to itself without end).
 * "This machine" is what the loader can know without a lookup: loopback, the wildcards,
 * `localhost`, the host name and the addresses of its interfaces.
 */
import { hostname, networkInterfaces } from 'node:os';
import type { HostPort } from './types.js';

const WILDCARDS = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|0:0:0:0:0:0:0:1|localhost|localhost\.localdomain)$/i;

export function isWildcard(host: string): boolean {
  return WILDCARDS.has(host);
}

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/** An address of this machine, as far as it can be told without DNS. */
export function isThisMachine(host: string): boolean {
  const h = host.toLowerCase().split('%')[0]!;
  if (isLoopback(h) || isWildcard(h) || h === hostname().toLowerCase()) return true;
  return Object.values(networkInterfaces()).some((list) =>
    (list ?? []).some((i) => i.address.toLowerCase() === h),
  );
}

/** True when a connect to `address` lands on a listener bound to `listen` on this machine. */
export function reachesListener(address: HostPort, listen: HostPort): boolean {
  // Port 0 asks the system for a free port: no member can name it in advance.
  if (listen.port === 0 || address.port !== listen.port) return false;
  const a = address.host.toLowerCase();
  const l = listen.host.toLowerCase();
  if (a === l) return true;
  if (isWildcard(l)) return isThisMachine(a);
  // A listener on one loopback address: `localhost` reaches it as well.
  return isLoopback(l) && (a === 'localhost' || isWildcard(a));
}
