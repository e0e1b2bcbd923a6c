import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ProxiedSession } from '../proxy/sessions.js';
import type { Client } from './client.js';
import type { CutReason } from './plan.js';
import type { SessionLog } from './session-log.js';

/**
 * The metrics and log records of one route's clients, in one place: the router says what
 * happened, this says it to the outside (with the labels of the route), so the router's
 * code reads as client moves only.
 */
export class RouteReport {
  /** When a connect failure was last logged per member (a crash fails hundreds at once). */
  private readonly failLoggedAt = new Map<string, number>();
  /** Clients that disconnected while held since the last release (counted apart from the released). */
  private leftWhileHeld = 0;

  constructor(
    private readonly mirror: string,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly sessionLog: SessionLog,
  ) {}

  /** A client given up, counted under `reason`; a held client's timeout is logged too. */
  rejected(reason: string, c: Client): void {
    this.metrics.connectionErrors.inc({ mirror: this.mirror, reason });
    if (reason === 'hold_timeout')
      this.log.warn({ waited_ms: Math.round(performance.now() - c.acceptedAt) }, 'held client timed out');
    if (this.sessionLog.on) this.sessionLog.unlinked(this.log, c, reason);
  }

  /** A linked session closed (the router asks `sessionLog.on` first: nothing runs while it is off). */
  sessionClosed(c: Client, s: ProxiedSession<Client>): void {
    this.sessionLog.linked(this.log, c, s);
  }

  acceptFailed(err: NodeJS.ErrnoException): void {
    this.metrics.connectionErrors.inc({ mirror: this.mirror, reason: `accept_${err.code ?? 'error'}` });
    this.log.error({ err: err.message, code: err.code }, 'accept failed');
  }

  /** A connect failed: logged at most once a second per member. */
  connectFailed(member: string, code: string): void {
    const now = performance.now();
    if (now - (this.failLoggedAt.get(member) ?? -Infinity) < 1000) return;
    this.failLoggedAt.set(member, now);
    this.log.warn(
      { member, code },
      'backend connect failed; probing the mirror and retrying while the hold lasts',
    );
  }

  retried(member: string): void {
    this.metrics.connectRetries.inc({ mirror: this.mirror, member });
  }

  leftWhileHeldOne(c: Client): void {
    this.leftWhileHeld++;
    this.metrics.connectionErrors.inc({ mirror: this.mirror, reason: 'left_while_held' });
    if (this.sessionLog.on) this.sessionLog.unlinked(this.log, c, 'left_while_held');
  }

  /** Held clients released to `member` (with those that left since the last release). */
  released(member: string | null, clients: number): void {
    const left = this.leftWhileHeld;
    this.leftWhileHeld = 0;
    if (clients > 0 || left > 0)
      this.log.info({ member, clients, left_while_held: left }, 'held clients released');
  }

  /** Sessions of one member cut, and those moved on (their member never answered). */
  cut(member: string, reason: CutReason, cut: number, moved: number): void {
    const labels = { mirror: this.mirror, member };
    if (cut > 0) {
      this.metrics.sessionsCut.inc({ ...labels, reason }, cut);
      this.log.warn({ member, sessions: cut, reason }, 'sessions cut');
    }
    if (moved > 0) {
      this.metrics.sessionsRedispatched.inc(labels, moved);
      this.log.info({ member, sessions: moved, reason }, 'unanswered sessions sent to the new primary');
    }
  }

  idleCut(member: string): void {
    this.metrics.sessionsCut.inc({ mirror: this.mirror, member, reason: 'idle' });
  }

  /** The gauges of waiting clients. */
  waiting(held: number, gated: number): void {
    this.metrics.held.set({ mirror: this.mirror }, held);
    this.metrics.connectsWaiting.set({ mirror: this.mirror }, gated);
  }
}

/** The connection_errors reason of a connect that failed with `code`. */
export function connectReason(code: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connect_refused';
    case 'MLB_ERR_CONNECT_TIMEOUT':
      return 'connect_timeout';
    case 'ECONNRESET':
      return 'connect_reset';
    case 'EMFILE':
    case 'ENFILE':
      return 'fd_exhausted';
    default:
      return 'connect_error';
  }
}
