import type { MirrorConfig } from '../config/types.js';
import type { EventLog } from '../events.js';
import type { DecisionChange, RoleChange } from '../health/monitor.js';
import type { AdminState, Decision, MemberHealth, ProbeResult } from '../health/types.js';
import type { Logger } from '../log.js';
import type { CheckCounters, Metrics } from '../metrics.js';
import type { RouteEffect } from './plan.js';

export type AdminAction = 'drain' | 'disable' | 'enable';

/** Per check URL: its last answer class (logged once per change) and whether it was unexpected. */
interface UrlSeen {
  answer: string;
  unexpected: boolean;
}

/**
 * Everything one mirror tells the outside (metrics, log records, the transitions log),
 * derived from what the monitor hands over — a probe's health before and after, a step's
 * role and decision change — and from what the router did (its RouteEffect). It keeps no
 * copy of member health: transitions are read off (prev, next). What it keeps is what only
 * reporting needs: the metric handles per member, each URL's last answer class (a log line
 * per change of class, not per probe), and the last member that took clients (a failover
 * is counted when that changes, not on every suspicion).
 */
export class Reporter {
  private readonly counters = new Map<string, CheckCounters>();
  private readonly urls = new Map<string, Map<string, UrlSeen>>();
  private lastAccepting: string | null = null;

  constructor(
    private config: MirrorConfig,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly events: EventLog,
  ) {}

  /** A reload: the same mirror under a new config; series for its members exist from now on. */
  configure(config: MirrorConfig, decision: Decision): void {
    this.config = config;
    this.metrics.seedMirror(
      config.name,
      config.members.map((m) => m.name),
    );
    this.decided(decision);
  }

  /** The mirror is gone: the series that say where clients go are removed (figures of the past stay). */
  removed(): void {
    const mirror = this.config.name;
    for (const m of this.config.members) this.metrics.memberPrimary.remove({ mirror, member: m.name });
    this.metrics.mirrorHasPrimary.remove({ mirror });
  }

  /** One probe: counted, timed, reachability set when it changes, each URL's answer reported. */
  probed(member: string, r: ProbeResult, prev: MemberHealth, next: MemberHealth): void {
    const c = this.countersOf(member);
    c.result(r.kind).n++;
    this.metrics.healthCheckDuration.observe(c.labels, r.latencyMs / 1000);
    if (prev.lastCheckAt === null || prev.reachable !== next.reachable)
      this.metrics.memberReachable.set(c.labels, next.reachable ? 1 : 0);
    this.urlAnswers(c, member, r);
    if (next.contradicted && !prev.contradicted) {
      this.log.warn(
        { member, decided_by: next.decidedBy, answers: r.answers },
        'check URLs contradict each other; no new clients for this member until they agree',
      );
    }
  }

  /**
   * A member's role changed; `effect` is what this step's decision did (never a prediction).
   * `detectionMs`: time since the member's check before the one that saw it (null: none), an
   * upper bound on how long the change went unseen.
   */
  role(c: RoleChange, detectionMs: number | null, effect: RouteEffect, held: number): void {
    const level = c.from === 'primary' || c.from === 'suspect' || c.to === 'suspect' ? 'warn' : 'info';
    const what =
      c.to === 'primary'
        ? 'member promoted'
        : c.from === 'primary'
          ? 'member demoted'
          : 'member role changed';
    this.log[level]({ member: c.member, from: c.from, to: c.to, check: c.result }, what);
    this.events.push({
      kind: 'role',
      mirror: this.config.name,
      member: c.member,
      from: c.from,
      to: c.to,
      detectionMs,
      heldClients: held,
      cutSessions: effect.cut,
      detail: c.result ?? undefined,
    });
  }

  /** The decision changed: gauges, a conflict, "not accepting", or a new primary (a failover). */
  decision(change: DecisionChange, effect: RouteEffect): void {
    const { prev, next } = change;
    this.decided(next);
    if (next.conflict.length > 0 && prev.conflict.length === 0) this.conflict(next);
    if (!next.accepting && prev.accepting) {
      this.log.warn(
        { primary: next.primary, reason: next.primary ? 'suspect, draining or conflict' : 'no primary' },
        'mirror not accepting: holding new clients',
      );
    }
    if (next.accepting && next.primary !== null && next.primary !== this.lastAccepting) {
      this.newPrimary(next.primary, change.withoutPrimaryMs, effect);
    } else if (next.accepting && change.withoutPrimaryMs !== null) {
      this.log.info(
        {
          primary: next.primary,
          without_primary_ms: Math.round(change.withoutPrimaryMs),
          released: effect.released,
        },
        'primary accepting again',
      );
    }
  }

  /** A maintenance action through the admin API, with what it did. */
  admin(
    member: string,
    action: AdminAction,
    from: AdminState,
    to: AdminState,
    effect: RouteEffect,
    held: number,
  ): void {
    const mirror = this.config.name;
    this.log.warn({ mirror, member, action, from, to, cut: effect.cut }, 'admin action');
    this.events.push({
      kind: 'admin',
      mirror,
      member,
      from,
      to,
      detectionMs: null,
      heldClients: held,
      cutSessions: effect.cut,
      detail: action,
    });
  }

  /** The gauges that say where clients go. */
  private decided(d: Decision): void {
    const mirror = this.config.name;
    this.metrics.mirrorHasPrimary.set({ mirror }, d.accepting ? 1 : 0);
    for (const m of this.config.members)
      this.metrics.memberPrimary.set({ mirror, member: m.name }, d.primary === m.name ? 1 : 0);
  }

  private conflict(next: Decision): void {
    this.metrics.primaryConflicts.inc({ mirror: this.config.name });
    this.log.error(
      {
        claimants: [next.primary, ...next.conflict].filter(Boolean),
        kept: next.primary,
        policy: this.config.onConflict,
      },
      'two members claim primary',
    );
  }

  /** A member other than the last one accepts clients: the first primary found, or a failover. */
  private newPrimary(primary: string, withoutPrimaryMs: number | null, effect: RouteEffect): void {
    const mirror = this.config.name;
    const from = this.lastAccepting;
    this.lastAccepting = primary;
    if (from !== null) this.metrics.failovers.inc({ mirror });
    if (withoutPrimaryMs !== null) this.metrics.noPrimarySeconds.observe({ mirror }, withoutPrimaryMs / 1000);
    const ms = withoutPrimaryMs === null ? null : Math.round(withoutPrimaryMs);
    this.log[from === null ? 'info' : 'warn'](
      {
        from,
        to: primary,
        without_primary_ms: ms,
        released: effect.released,
        cut: effect.cut,
        moved: effect.moved,
      },
      from === null ? 'primary found' : 'failover',
    );
    this.events.push({
      kind: 'failover',
      mirror,
      member: primary,
      from,
      to: primary,
      detectionMs: ms,
      heldClients: effect.released,
      cutSessions: effect.cut,
    });
  }

  /**
   * Per check URL: counted by class, and logged once per change of class (an unexpected answer
   * with its status: "one gateway is broken").
   */
  private urlAnswers(c: CheckCounters, member: string, r: ProbeResult): void {
    let seen = this.urls.get(member);
    if (!seen) this.urls.set(member, (seen = new Map()));
    for (const a of r.answers ?? []) {
      if (a.outcome === 'skipped') continue;
      c.answer(a.url, a.outcome).n++;
      const unexpected = a.outcome === 'unexpected';
      const last = seen.get(a.url);
      const was = last?.answer;
      if (last === undefined || last.unexpected !== unexpected)
        this.metrics.checkUrlUnexpected.set({ ...c.labels, url: a.url }, unexpected ? 1 : 0);
      if (last === undefined) seen.set(a.url, { answer: a.outcome, unexpected });
      else {
        last.answer = a.outcome;
        last.unexpected = unexpected;
      }
      if (was === a.outcome || (was === undefined && a.outcome !== 'unexpected')) continue;
      const fields = {
        member,
        url: a.url,
        answer: a.outcome,
        status: a.status,
        code: a.code,
        was: was ?? null,
      };
      if (a.outcome === 'unexpected')
        this.log.warn(fields, 'check URL answered unexpectedly (a failed check of that URL, not a demotion)');
      else if (was === 'unexpected') this.log.info(fields, 'check URL answers as expected again');
    }
  }

  private countersOf(member: string): CheckCounters {
    let c = this.counters.get(member);
    if (!c) this.counters.set(member, (c = this.metrics.checks(this.config.name, member)));
    return c;
  }
}
