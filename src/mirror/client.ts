import type { Socket } from 'node:net';
import type { ProxiedSession } from '../proxy/sessions.js';
import type { RawTcp } from '../proxy/raw.js';
import type { Dial } from './dial.js';
import type { Watch } from './watch.js';

/**
 * Where a client is in its life, and the one thing that says so (a client is never "the one
 * that Map holds"):
 * - `accepted`: in hand, not placed yet: on a listener whose reload is not committed (served
 *   by `serve()`), or being routed right now (just accepted, woken, given back);
 * - `held`: waiting for a member to send it to (no primary, a retry's backoff), watched;
 * - `gated`: waiting at the connect gate of its member (`proxy.max_connecting`), watched;
 * - `connecting`: its backend connect is under way (`dial` set);
 * - `linked`: bytes flow (`session` set);
 * - `closed`: gone; no list holds it.
 */
export type ClientState = 'accepted' | 'held' | 'gated' | 'connecting' | 'linked' | 'closed';

export const CLIENT_STATES: readonly ClientState[] = [
  'accepted',
  'held',
  'gated',
  'connecting',
  'linked',
  'closed',
];

/**
 * One client connection of a route, from accept to close. Owned by its route's ClientTable;
 * only `ClientTable.move` changes `state` (and with it the lists and counts).
 */
export class Client {
  state: ClientState = 'accepted';
  /** Set while the client is a raw handle no socket was made for (raw.ts); then `socket` is null. */
  handle: RawTcp | null;
  socket: Socket | null;
  /** Monotonic ms: when it arrived (or was given back by a member that left), and when its hold ends. */
  acceptedAt: number;
  deadline: number;
  /** Backend connects tried so far (the retry backoff). */
  attempts = 0;
  /** Bytes it sent to a member that never answered, sent first to the next one. */
  replay: readonly Buffer[] | null = null;
  /** The member it waits at the gate for, connects to, or is linked with. */
  member: string | null = null;
  /** The connect under way (`connecting`). */
  dial: Dial | null = null;
  /** Its session (`linked`). */
  session: ProxiedSession<Client> | null = null;
  /** The timer and socket listeners while `held` or `gated`. */
  watch: Watch | null = null;

  constructor(socket: Socket | null, handle: RawTcp | null, acceptedAt: number, deadline: number) {
    this.socket = socket;
    this.handle = handle;
    this.acceptedAt = acceptedAt;
    this.deadline = deadline;
  }

  /** Whether the client is gone already (its socket destroyed); a raw handle is never gone unseen. */
  get gone(): boolean {
    return this.socket !== null && this.socket.destroyed;
  }
}

/**
 * The clients of one route, one list per state, moved only by `move` (as pgbouncer's
 * change_client_state): every count per state is exact, and "the clients connecting to
 * member X" is one lookup, not a scan of every collection.
 */
export class ClientTable {
  private readonly lists = new Map<ClientState, Set<Client>>(
    CLIENT_STATES.filter((s) => s !== 'closed').map((s) => [s, new Set<Client>()]),
  );

  /** Moves `c` to `to` (a client enters through `add`, which files it under its state). */
  move(c: Client, to: ClientState): void {
    if (c.state === to) return;
    this.lists.get(c.state)?.delete(c);
    c.state = to;
    this.lists.get(to)?.add(c);
  }

  add(c: Client): void {
    this.lists.get(c.state)?.add(c);
  }

  count(state: ClientState): number {
    return this.lists.get(state)?.size ?? 0;
  }

  /** Clients a route counts against `max_connections`: every state but `accepted` and `closed`. */
  get active(): number {
    return this.count('held') + this.count('gated') + this.count('connecting') + this.count('linked');
  }

  /** Clients at the gate for, or connecting to, `member` (a scan: asked by read pools only). */
  countFor(member: string): number {
    let n = 0;
    for (const s of ['gated', 'connecting'] as const)
      for (const c of this.lists.get(s)!) if (c.member === member) n++;
    return n;
  }

  /** A copy of the clients in `state`, oldest first (safe to move them while iterating). */
  list(state: ClientState): Client[] {
    return [...(this.lists.get(state) ?? [])];
  }
}
