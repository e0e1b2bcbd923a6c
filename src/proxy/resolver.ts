import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { HostPort } from '../config/types.js';

/**
 * Backend addresses resolved to IP literals once, not per connect (a lookup per connect
 * costs the data path 12-25% CPU). Re-resolved when a connect fails or a member becomes
 * primary, because a container restart moves its address.
 */
export class Resolver {
  private readonly cache = new Map<string, HostPort>();

  /** The address to dial now: the resolved IP when known, else the name as configured. */
  get(addr: HostPort): HostPort {
    if (net.isIP(addr.host)) return addr;
    return this.cache.get(key(addr)) ?? addr;
  }

  async refresh(addr: HostPort): Promise<void> {
    if (net.isIP(addr.host)) return;
    try {
      const { address } = await lookup(addr.host);
      this.cache.set(key(addr), { host: address, port: addr.port });
    } catch {
      // Unresolvable now (the container may not exist yet): dial by name, which retries the lookup.
      this.cache.delete(key(addr));
    }
  }
}

function key(a: HostPort): string {
  return `${a.host}:${a.port}`;
}
