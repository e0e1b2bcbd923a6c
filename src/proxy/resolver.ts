import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { HostPort } from '../config/types.js';

/**
 * Backend addresses resolved to IP literals once, not per connect (a lookup per connect
 * costs the data path 12-25% CPU). Re-resolved when a connect fails or a member becomes
 * primary, because a container restart moves its address.
 */
/** What the resolver knows of one member address (for /status and the snapshot). */
export type AddressState =
  | { readonly state: 'literal' }
  | { readonly state: 'pending' }
  | { readonly state: 'resolved'; readonly ip: string }
  /** The last lookup failed (code: ENOTFOUND, EAI_AGAIN, ...): connects dial the name. */
  | { readonly state: 'unresolved'; readonly code: string };

export class Resolver {
  private readonly cache = new Map<string, HostPort>();
  private readonly failed = new Map<string, string>();

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
      this.failed.delete(key(addr));
    } catch (err) {
      // Unresolvable now (the container may not exist yet): dial by name, which retries the lookup.
      this.cache.delete(key(addr));
      this.failed.set(key(addr), (err as NodeJS.ErrnoException).code ?? 'MLB_ERR_RESOLVE');
    }
  }

  state(addr: HostPort): AddressState {
    if (net.isIP(addr.host)) return LITERAL;
    const hit = this.cache.get(key(addr));
    if (hit) return Object.freeze({ state: 'resolved', ip: hit.host });
    const code = this.failed.get(key(addr));
    return code === undefined ? PENDING : Object.freeze({ state: 'unresolved', code });
  }
}

const LITERAL: AddressState = Object.freeze({ state: 'literal' });
const PENDING: AddressState = Object.freeze({ state: 'pending' });

function key(a: HostPort): string {
  return `${a.host}:${a.port}`;
}
