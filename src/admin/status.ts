import { performance } from 'node:perf_hooks';
import type { PoolSnapshot } from '../snapshot.js';
import { formatHostPort } from '../config/types.js';
import type { Daemon } from '../daemon.js';
import type { TransitionEvent } from '../events.js';
import type { MemberHealth } from '../health/types.js';
import type { Resolution } from '../proxy/resolver.js';

/** Member state as the contract names it: health role, overridden by maintenance. */
export type MemberState =
  'primary' | 'suspect' | 'backup' | 'unreachable' | 'unknown' | 'draining' | 'disabled';

export interface MemberStatus {
  readonly name: string;
  readonly address: string;
  readonly check: readonly string[];
  readonly state: MemberState;
  readonly role: string;
  readonly admin: string;
  readonly reachable: boolean;
  readonly lastCheck: {
    readonly ageMs: number;
    readonly latencyMs: number | null;
    readonly result: string | null;
  } | null;
  readonly sessions: number;
  /** The member address's DNS lookup: `error` set while the name does not resolve. */
  readonly resolution: Resolution;
  /**
   * Each check URL's last answer and its class, and which one decided, so that one broken
   * Web Gateway is visible at a glance. One entry per configured URL.
   */
  readonly checks: readonly CheckStatus[];
  /** Its URLs contradicted each other in the last round: no new clients until they agree. */
  readonly contradicted: boolean;
  /** It lost the role to fencing (no authoritative answer for fence_after). */
  readonly fenced: boolean;
}

export interface CheckStatus {
  readonly url: string;
  /** primary, not_primary, unexpected (authoritative or not), error, timeout, skipped; null: not probed yet. */
  readonly outcome: string | null;
  readonly status: number | null;
  readonly code: string | null;
  readonly latencyMs: number | null;
  /** This URL's answer decided the last round. */
  readonly decided: boolean;
}

export interface MirrorStatus {
  readonly name: string;
  /** iris, patroni or generic: what the check answers are read as. */
  readonly kind: string;
  readonly listen: string;
  readonly primary: string | null;
  readonly accepting: boolean;
  readonly conflict: readonly string[];
  readonly heldClients: number;
  readonly sessions: number;
  readonly members: readonly MemberStatus[];
  /** The newest failover from one member to another still in the events log (null: none). */
  readonly lastFailover: TransitionEvent | null;
  /** Its read pools: each member's pool state (`primary` is not `down`), sessions, held clients. */
  readonly pools: readonly PoolSnapshot[];
}

export interface StatusDoc {
  readonly version: string;
  /** Server time of the snapshot (ISO 8601), so clients can age events without trusting their own clock. */
  readonly time: string;
  readonly uptimeSeconds: number;
  readonly ready: boolean;
  /** `running`, or during a SIGTERM `grace` (unready, still accepting) then `stopping` (draining). */
  readonly phase: string;
  readonly mirrors: readonly MirrorStatus[];
  readonly eventCount: number;
  /** Data-plane event loops serving the mirrors (`workers`). */
  readonly loops: number;
  /**
   * With several loops, one entry per loop over every mirror: client connections open now
   * (held, connecting or linked) and accepted so far, to see how the kernel spreads them.
   * Empty with one loop.
   */
  readonly perLoop: ReadonlyArray<{
    readonly loop: number;
    readonly open: number;
    readonly accepted: number;
  }>;
}

/** GET /status: a snapshot of every mirror, built fresh on each request. */
export function buildStatus(daemon: Daemon, version: string): StatusDoc {
  const now = performance.now();
  const events = daemon.events.list();
  const mirrors: MirrorStatus[] = [];
  for (const rt of daemon.snapshots().values()) {
    const d = rt.decision;
    mirrors.push({
      name: rt.config.name,
      kind: rt.config.kind,
      listen: formatHostPort({
        host: rt.config.listen.host,
        port: rt.listen?.port ?? rt.config.listen.port,
      }),
      primary: d.primary,
      // During the shutdown drain the listener is closed: no new client is taken, whatever the checks say.
      accepting: d.accepting && rt.listen !== null,
      conflict: d.conflict,
      heldClients: rt.held,
      sessions: rt.sessions,
      members: rt.members.map((m) => ({
        name: m.config.name,
        address: formatHostPort(m.config.address),
        check: m.config.check,
        state: m.admin === 'enabled' ? m.health.role : m.admin,
        role: m.health.role,
        admin: m.admin,
        reachable: m.health.reachable,
        lastCheck:
          m.health.lastCheckAt === null
            ? null
            : {
                ageMs: Math.round(now - m.health.lastCheckAt),
                latencyMs:
                  m.health.lastLatencyMs === null ? null : Math.round(m.health.lastLatencyMs * 10) / 10,
                result: m.health.lastResult,
              },
        sessions: m.sessions,
        checks: checkStatus(m.config.check, m.health),
        contradicted: m.health.contradicted,
        fenced: m.health.fenced,
        resolution: m.resolution,
      })),
      lastFailover: lastFailover(events, rt.config.name),
      pools: rt.pools ?? [],
    });
  }
  return {
    version,
    time: new Date().toISOString(),
    uptimeSeconds: Math.round((Date.now() - daemon.startedAt) / 1000),
    ready: daemon.ready(),
    phase: daemon.phase,
    mirrors,
    eventCount: daemon.events.count,
    loops: daemon.currentConfig.workers,
    perLoop: daemon.loopConnections().map((l, loop) => ({ loop, open: l.open, accepted: l.accepted })),
  };
}

function checkStatus(urls: readonly string[], h: MemberHealth): CheckStatus[] {
  return urls.map((url) => {
    const a = h.lastAnswers.find((x) => x.url === url);
    return {
      url,
      outcome: a?.outcome ?? null,
      status: a?.status ?? null,
      code: a?.code ?? null,
      latencyMs: a?.latencyMs == null ? null : Math.round(a.latencyMs * 10) / 10,
      decided: h.decidedBy === url,
    };
  });
}

/** lib is ES2022, without Array.prototype.findLast. */
function lastFailover(events: readonly TransitionEvent[], mirror: string): TransitionEvent | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.kind === 'failover' && e.mirror === mirror && e.from !== null) return e;
  }
  return null;
}
