import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { HostPort } from '../config/types.js';

/** What the last lookup of a member's host name gave, for /status. */
export interface Resolution {
  /** The IP clients are dialled at; null while the name has not resolved. */
  readonly ip: string | null;
  /** Why the last lookup failed (`ENOTFOUND`, `EAI_AGAIN`...); null when it succeeded or none ran yet. */
  readonly error: string | null;
}

/** An address to dial as it stands now, with its IP family (0: a name not resolved yet). */
export interface DialAddress extends HostPort {
  readonly family: 0 | 4 | 6;
}

/**
 * Backend addresses resolved to IP literals once, not per connect (a lookup per connect
 * costs the data path 12-25% CPU). Re-resolved when a connect fails, because a container
 * restart moves its address. It remembers why a lookup failed, so /status can say that a
 * member's name does not resolve instead of showing only failed connects.
 */
export class Resolver {
  private readonly cache = new Map<string, HostPort>();
  private readonly errors = new Map<string, string>();
  /** dial()'s answers by configured address object; `generation` says which lookups they saw. */
  private readonly dials = new WeakMap<HostPort, { readonly generation: number; readonly to: DialAddress }>();
  private generation = 0;

  /** The address to dial now: the resolved IP when known, else the name as configured. */
  get(addr: HostPort): HostPort {
    if (net.isIP(addr.host)) return addr;
    return this.cache.get(key(addr)) ?? addr;
  }

  /**
   * get() with the family of the address it gives, kept per configured address object until
   * a lookup changes something: the raw accept path asks on every client.
   */
  dial(addr: HostPort): DialAddress {
    const known = this.dials.get(addr);
    if (known !== undefined && known.generation === this.generation) return known.to;
    const { host, port } = this.get(addr);
    const to: DialAddress = Object.freeze({ host, port, family: net.isIP(host) as 0 | 4 | 6 });
    this.dials.set(addr, { generation: this.generation, to });
    return to;
  }

  /** The state of addr's lookup; an IP literal needs none and is always resolved. */
  state(addr: HostPort): Resolution {
    if (net.isIP(addr.host)) return { ip: addr.host, error: null };
    return { ip: this.cache.get(key(addr))?.host ?? null, error: this.errors.get(key(addr)) ?? null };
  }

  async refresh(addr: HostPort): Promise<void> {
    if (net.isIP(addr.host)) return;
    try {
      const { address } = await lookup(addr.host);
      if (this.cache.get(key(addr))?.host !== address) this.generation++;
      this.cache.set(key(addr), { host: address, port: addr.port });
      this.errors.delete(key(addr));
    } catch (err) {
      // Unresolvable now (the container may not exist yet): dial by name, which retries the lookup.
      if (this.cache.delete(key(addr))) this.generation++;
      this.errors.set(key(addr), (err as NodeJS.ErrnoException).code ?? 'lookup failed');
    }
  }
}

function key(a: HostPort): string {
  return `${a.host}:${a.port}`;
}
