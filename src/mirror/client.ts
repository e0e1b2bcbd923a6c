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
 * `max_connections` and `max_held` for the whole process, when it runs several data-plane
 * loops (src/workers/loop-counts.ts): counts kept in shared memory from every entry and move.
 */
export interface SharedLimits {
  /** The listener shares its port with the other loops' (the kernel spreads clients). */
  readonly reusePort: true;
  /** Takes a place for the client about to be added; false: the process is at `max`. */
  tryTake(max: number): boolean;
  held(): number;
  /** A client entered (from null) or moved. */
  moved(c: Client, from: ClientState | null, to: ClientState): void;
}

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
  /** Monotonic ms of its first arrival (a give-back does not reset it): the session log's duration. */
  readonly arrivedAt: number;
  /** Its address, read at accept only while the session log is on (session-log.ts). */
  peer: { readonly address: string | null; readonly port: number | null } | null = null;
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
    this.arrivedAt = acceptedAt;
    this.deadline = deadline;
  }

  /** Given back by a member that never answered: a socket again, with its bytes to replay and a new hold. */
  givenBack(socket: Socket, replay: readonly Buffer[], now: number, holdMs: number): void {
    this.session = null;
    this.socket = socket;
    this.handle = null;
    this.replay = replay.length > 0 ? replay : null;
    this.acceptedAt = now;
    this.deadline = now + holdMs;
    this.attempts = 0;
  }

  /** Whether the client is gone already (its socket destroyed); a raw handle is never gone unseen. */
  get gone(): boolean {
    return this.socket !== null && this.socket.destroyed;
  }
}

const NO_BUDGET = { take(): void {}, give(): void {} };

/**
 * The clients of one route, one list per state, moved only by `move` (as pgbouncer's
 * change_client_state): every count per state is exact, and "the clients connecting to
 * member X" is one lookup, not a scan of every collection.
 */
export class ClientTable {
  private readonly lists = new Map<ClientState, Set<Client>>(
    CLIENT_STATES.filter((s) => s !== 'closed').map((s) => [s, new Set<Client>()]),
  );

  /** In a data-plane loop of several: the process-wide counts, told of every entry and move. */
  limits: SharedLimits | null = null;

  /** Every client in a list holds descriptors: counted against the process's ceiling (fd-budget.ts). */
  constructor(private readonly budget: { take(): void; give(): void } = NO_BUDGET) {}

  /** Moves `c` to `to` (a client enters through `add`, which files it under its state). */
  move(c: Client, to: ClientState): void {
    if (c.state === to) return;
    const from = c.state;
    const was = this.lists.get(from)?.delete(c) ?? false;
    c.state = to;
    const is = this.lists.get(to)?.add(c) !== undefined;
    if (was && !is) this.budget.give();
    else if (is && !was) this.budget.take();
    this.limits?.moved(c, from, to);
  }

  add(c: Client): void {
    const list = this.lists.get(c.state);
    if (list === undefined || list.has(c)) return;
    list.add(c);
    this.budget.take();
    this.limits?.moved(c, null, c.state);
  }

  count(state: ClientState): number {
    return this.lists.get(state)?.size ?? 0;
  }

  /** Clients a route counts against `max_connections`: every state but `accepted` and `closed`. */
  get active(): number {
    return this.count('held') + this.count('gated') + this.count('connecting') + this.count('linked');
  }

  /** Whether a new client may be added under `max_connections` (taking its place when shared). */
  admits(max: number): boolean {
    return this.limits ? this.limits.tryTake(max) : this.active < max;
  }

  /** Held clients against `max_held`: the whole process's when shared. */
  held(): number {
    return this.limits ? this.limits.held() : this.count('held');
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
