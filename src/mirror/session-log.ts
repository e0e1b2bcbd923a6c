import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { LinkEnd } from '../proxy/link.js';
import type { ProxiedSession } from '../proxy/sessions.js';
import type { Client } from './client.js';

/**
 * How a client's time with the balancer ended, as the session log says it:
 * - `client_closed` / `server_closed`: the side whose FIN (or reset) came first;
 * - `cut_demoted` / `cut_disabled` / `cut_conflict`: its member lost the role (fencing is a
 *   demotion), `removed`: its member or mirror left the config, `drain`: shutdown;
 * - `idle_timeout`: `proxy.idle_timeout`;
 * - never linked: `connect_failed`, `hold_timeout`, `refused` (at `max_connections` or
 *   `max_held`; `reason` says which), `left_while_held`.
 */
export type SessionEnd =
  | 'client_closed'
  | 'server_closed'
  | 'cut_demoted'
  | 'cut_disabled'
  | 'cut_conflict'
  | 'removed'
  | 'drain'
  | 'idle_timeout'
  | 'connect_failed'
  | 'hold_timeout'
  | 'refused'
  | 'left_while_held';

/** The end of a linked session from why the table closed it (null: it ended by itself) and which side ended first. */
export function linkedEnd(cut: string | null, firstEnd: LinkEnd): SessionEnd {
  switch (cut) {
    case null:
      return firstEnd === 'server' ? 'server_closed' : 'client_closed';
    case 'idle':
      return 'idle_timeout';
    case 'shutdown':
      return 'drain';
    case 'removed':
      return 'removed';
    case 'demoted':
    case 'disabled':
    case 'conflict':
      return `cut_${cut}`;
    default:
      return 'removed';
  }
}

/** The end of a client given up before it was linked, from its connection_errors reason. */
export function rejectedEnd(reason: string): SessionEnd {
  if (reason === 'hold_timeout') return 'hold_timeout';
  if (reason === 'shutdown') return 'drain';
  if (reason === 'left_while_held') return 'left_while_held';
  if (reason === 'max_connections' || reason === 'hold_full') return 'refused';
  return 'connect_failed';
}

/** A raw TCPWrap's getpeername (Node's own binding, present since long before Node 20). */
interface PeerNamed {
  getpeername?(out: { address?: string; port?: number }): number;
}

/**
 * The session log's switch (`log.sessions`, one per daemon, set at start and reload) and
 * its records. While it is off nothing per connection happens: the router asks `on` before
 * calling anything here, and no client carries its address.
 */
export class SessionLog {
  constructor(public on: boolean) {}

  /** At accept, while the client is surely still connected: its address and port. */
  accepted(c: Client): void {
    if (c.socket !== null) {
      c.peer = { address: c.socket.remoteAddress ?? null, port: c.socket.remotePort ?? null };
      return;
    }
    const out: { address?: string; port?: number } = {};
    const err = (c.handle as PeerNamed | null)?.getpeername?.(out) ?? -1;
    c.peer = err === 0 ? { address: out.address ?? null, port: out.port ?? null } : null;
  }

  /** A linked session closed (not one given back to be tried on another member). */
  linked(log: Logger, c: Client, s: ProxiedSession<Client>): void {
    if (s.link.firstEnd === 'given_back') return;
    this.write(log, c, s.member.name, s.link.bytesIn, s.link.bytesOut, linkedEnd(s.cut, s.link.firstEnd));
  }

  /** A client that never linked, given up under its connection_errors `reason`. */
  unlinked(log: Logger, c: Client, reason: string): void {
    const end = rejectedEnd(reason);
    this.write(
      log,
      c,
      c.member,
      0,
      0,
      end,
      end === 'refused' || end === 'connect_failed' ? reason : undefined,
    );
  }

  private write(
    log: Logger,
    c: Client,
    member: string | null,
    bytesIn: number,
    bytesOut: number,
    end: SessionEnd,
    reason?: string,
  ): void {
    log.info(
      {
        client: c.peer?.address ?? null,
        client_port: c.peer?.port ?? null,
        member,
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        duration_ms: Math.round(performance.now() - c.arrivedAt),
        end,
        ...(reason === undefined ? {} : { reason }),
      },
      'session',
    );
  }
}
