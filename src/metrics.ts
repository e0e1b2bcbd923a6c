import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from './version.js';

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (default on). */
  readonly defaultMetrics?: boolean;
  /**
   * Per-session metrics of the data path (connections and bytes). Off makes them no-ops that
   * are not exported: only for measuring what they cost (bench), never in production.
   */
  readonly hotPath?: boolean;
}

/**
 * prom-client's default metrics include three gauges named `*_total`, which
 * `promtool check metrics` rejects (only counters may end in _total); their labelled
 * siblings (`nodejs_active_handles{type}`, ...) carry the same numbers.
 */
const LINT_FAILING_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

const HEALTH_RESULTS = ['primary', 'not_primary', 'unexpected', 'timeout', 'error'] as const;

/**
 * The data-path figures of one member as plain numbers: a connect or a close adds to a
 * field, with no label hashing and no prom-client call; a scrape copies them into
 * mirrorlb_connections_active, _connections_total and _bytes_total (their `collect`).
 * `MemberCounters` objects are made once per member (`Metrics.member`) and kept by the
 * session table, so nothing is looked up per connection either.
 */
export class MemberCounters {
  /** Sessions open now. */
  active = 0;
  /** Sessions opened since start. */
  total = 0;
  /** Bytes client → member and member → client of closed sessions (open ones: flushBytes). */
  bytesIn = 0;
  bytesOut = 0;
  /** What the last scrape already added to the counters (they only take increments). */
  exportedTotal = 0;
  exportedIn = 0;
  exportedOut = 0;
  readonly labels: Readonly<{ mirror: string; member: string }>;
  readonly labelsIn: Readonly<{ mirror: string; member: string; direction: 'in' }>;
  readonly labelsOut: Readonly<{ mirror: string; member: string; direction: 'out' }>;

  constructor(mirror: string, member: string) {
    this.labels = Object.freeze({ mirror, member });
    this.labelsIn = Object.freeze({ mirror, member, direction: 'in' as const });
    this.labelsOut = Object.freeze({ mirror, member, direction: 'out' as const });
  }
}

/** Objects kept per mirror and member, made on first use. */
class PerMember<T> {
  private readonly byMirror = new Map<string, Map<string, T>>();

  get(mirror: string, member: string, make: () => T): T {
    let byMember = this.byMirror.get(mirror);
    if (!byMember) this.byMirror.set(mirror, (byMember = new Map()));
    let v = byMember.get(member);
    if (v === undefined) byMember.set(member, (v = make()));
    return v;
  }

  *values(): Iterable<T> {
    for (const byMember of this.byMirror.values()) yield* byMember.values();
  }
}

/** A count kept as a plain number and copied into its prom-client counter at each scrape. */
export class Tally<L extends string> {
  n = 0;
  /** What the last scrape already added to the counter (it only takes increments). */
  exported = 0;
  constructor(readonly labels: Readonly<Record<L, string>>) {}
}

function exportTallies<L extends string>(counter: Counter<L>, tallies: Iterable<Tally<L>>): void {
  for (const t of tallies) {
    if (t.n > t.exported) counter.inc(t.labels, t.n - t.exported);
    t.exported = t.n;
  }
}

/**
 * The health-check counts of one member as plain numbers: a probe adds to a Tally, a scrape
 * copies the increments into mirrorlb_health_checks_total and mirrorlb_check_url_answers_total
 * (their `collect`), as MemberCounters does for the data path. Made once per member
 * (`Metrics.checks`) and kept by the mirror's reporter, so a probe hashes no label set for
 * them: at 70 probes a second label lookups would be a tenth of the daemon's JavaScript time
 * at rest. A series appears at the first scrape after its first count.
 */
export class CheckCounters {
  readonly labels: Readonly<{ mirror: string; member: string }>;
  private readonly results = new Map<string, Tally<'mirror' | 'member' | 'result'>>();
  /** Per check URL, per answer class. */
  private readonly answers = new Map<string, Map<string, Tally<'mirror' | 'member' | 'url' | 'answer'>>>();

  constructor(mirror: string, member: string) {
    this.labels = Object.freeze({ mirror, member });
  }

  /** The tally of checks with this result (mirrorlb_health_checks_total). */
  result(result: string): Tally<'mirror' | 'member' | 'result'> {
    let t = this.results.get(result);
    if (!t) this.results.set(result, (t = new Tally(Object.freeze({ ...this.labels, result }))));
    return t;
  }

  /** The tally of this URL's answers of this class (mirrorlb_check_url_answers_total). */
  answer(url: string, answer: string): Tally<'mirror' | 'member' | 'url' | 'answer'> {
    let byAnswer = this.answers.get(url);
    if (!byAnswer) this.answers.set(url, (byAnswer = new Map()));
    let t = byAnswer.get(answer);
    if (!t) byAnswer.set(answer, (t = new Tally(Object.freeze({ ...this.labels, url, answer }))));
    return t;
  }

  resultTallies(): Iterable<Tally<'mirror' | 'member' | 'result'>> {
    return this.results.values();
  }

  *answerTallies(): Iterable<Tally<'mirror' | 'member' | 'url' | 'answer'>> {
    for (const byAnswer of this.answers.values()) yield* byAnswer.values();
  }
}

/**
 * A data-path metric that is made but never registered: with `metrics.enabled: false` it
 * accepts every call (tests, admin code) and exports nothing. A real prom-client object of
 * the right type, so no cast is needed; the hot path never calls it anyway (it counts in
 * MemberCounters).
 */
function unregistered<M>(make: (registers: Registry[]) => M, on: boolean, registry: Registry): M {
  return make(on ? [registry] : []);
}

/**
 * Every Prometheus metric of the contract, registered on one injected Registry so tests
 * (and two daemons in one process) never share global state. The per-session figures are
 * counted in MemberCounters and copied into prom-client at scrape time, so connect, close
 * and every forwarded byte cost a field update.
 */
export class Metrics {
  readonly registry: Registry;
  readonly memberPrimary: Gauge<'mirror' | 'member'>;
  readonly memberReachable: Gauge<'mirror' | 'member'>;
  readonly mirrorHasPrimary: Gauge<'mirror'>;
  readonly failovers: Counter<'mirror'>;
  readonly connectionsActive: Gauge<'mirror' | 'member'>;
  readonly connectionsTotal: Counter<'mirror' | 'member'>;
  readonly connectionErrors: Counter<'mirror' | 'reason'>;
  readonly connectRetries: Counter<'mirror' | 'member'>;
  readonly held: Gauge<'mirror'>;
  readonly connectsWaiting: Gauge<'mirror'>;
  readonly bytes: Counter<'mirror' | 'member' | 'direction'>;
  readonly healthChecks: Counter<'mirror' | 'member' | 'result'>;
  readonly healthCheckDuration: Histogram<'mirror' | 'member'>;
  readonly checkUrlAnswers: Counter<'mirror' | 'member' | 'url' | 'answer'>;
  readonly checkUrlUnexpected: Gauge<'mirror' | 'member' | 'url'>;
  readonly configReloads: Counter<'result'>;
  readonly primaryConflicts: Counter<'mirror'>;
  readonly sessionsCut: Counter<'mirror' | 'member' | 'reason'>;
  readonly noPrimarySeconds: Histogram<'mirror'>;
  readonly sessionsRedispatched: Counter<'mirror' | 'member'>;
  /** One MemberCounters per mirror and member, made on first use (see `member`). */
  private readonly members = new PerMember<MemberCounters>();
  /** One CheckCounters per mirror and member, made on first use (see `checks`). */
  private readonly checkCounters = new PerMember<CheckCounters>();

  constructor(registry: Registry = new Registry(), opts: MetricsOptions = {}) {
    this.registry = registry;
    const r = [registry];
    const hot = opts.hotPath !== false;
    // The collect hooks run at every scrape: they copy the plain numbers of MemberCounters.
    const counters = (): Iterable<MemberCounters> => this.members.values();
    const checks = (): Iterable<CheckCounters> => this.checkCounters.values();
    this.memberPrimary = new Gauge({
      name: 'mirrorlb_member_primary',
      help: '1 while the balancer holds this member as its mirror primary',
      labelNames: ['mirror', 'member'],
      registers: r,
    });
    this.memberReachable = new Gauge({
      name: 'mirrorlb_member_reachable',
      help: '1 while the last health check of this member got an HTTP answer',
      labelNames: ['mirror', 'member'],
      registers: r,
    });
    this.mirrorHasPrimary = new Gauge({
      name: 'mirrorlb_mirror_has_primary',
      help: '1 while the mirror has a primary accepting new clients',
      labelNames: ['mirror'],
      registers: r,
    });
    this.failovers = new Counter({
      name: 'mirrorlb_failovers_total',
      help: 'Times the primary of the mirror changed to another member',
      labelNames: ['mirror'],
      registers: r,
    });
    this.connectionsActive = unregistered(
      (registers) =>
        new Gauge({
          name: 'mirrorlb_connections_active',
          help: 'Proxied sessions open to this member',
          labelNames: ['mirror', 'member'],
          registers,
          collect() {
            for (const c of counters()) this.set(c.labels, c.active);
          },
        }),
      hot,
      registry,
    );
    this.connectionsTotal = unregistered(
      (registers) =>
        new Counter({
          name: 'mirrorlb_connections_total',
          help: 'Proxied sessions opened to this member',
          labelNames: ['mirror', 'member'],
          registers,
          collect() {
            for (const c of counters()) {
              if (c.total > c.exportedTotal) this.inc(c.labels, c.total - c.exportedTotal);
              c.exportedTotal = c.total;
            }
          },
        }),
      hot,
      registry,
    );
    this.connectionErrors = new Counter({
      name: 'mirrorlb_connection_errors_total',
      help: 'Client connections that failed, by reason',
      labelNames: ['mirror', 'reason'],
      registers: r,
    });
    this.connectRetries = new Counter({
      name: 'mirrorlb_connect_retries_total',
      help: 'Backend connects that failed and were retried while the client was held (not client errors)',
      labelNames: ['mirror', 'member'],
      registers: r,
    });
    this.held = new Gauge({
      name: 'mirrorlb_held_connections',
      help: 'Clients held while the mirror has no primary accepting them',
      labelNames: ['mirror'],
      registers: r,
    });
    this.connectsWaiting = new Gauge({
      name: 'mirrorlb_connects_waiting',
      help: 'Clients waiting for a backend connect slot (proxy.max_connecting connects already in flight to their member)',
      labelNames: ['mirror'],
      registers: r,
    });
    this.bytes = unregistered(
      (registers) =>
        new Counter({
          name: 'mirrorlb_bytes_total',
          help: 'Bytes forwarded; direction in = client to member, out = member to client',
          labelNames: ['mirror', 'member', 'direction'],
          registers,
          collect() {
            for (const c of counters()) {
              if (c.bytesIn > c.exportedIn) this.inc(c.labelsIn, c.bytesIn - c.exportedIn);
              if (c.bytesOut > c.exportedOut) this.inc(c.labelsOut, c.bytesOut - c.exportedOut);
              c.exportedIn = c.bytesIn;
              c.exportedOut = c.bytesOut;
            }
          },
        }),
      hot,
      registry,
    );
    this.healthChecks = new Counter({
      name: 'mirrorlb_health_checks_total',
      help: 'Health checks by result (primary, not_primary, unexpected, timeout, error)',
      labelNames: ['mirror', 'member', 'result'],
      registers: r,
      collect() {
        for (const c of checks()) exportTallies(this, c.resultTallies());
      },
    });
    this.healthCheckDuration = new Histogram({
      name: 'mirrorlb_health_check_duration_seconds',
      help: 'Duration of health checks',
      labelNames: ['mirror', 'member'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    });
    // Per check URL: one broken Web Gateway shows here while the member's own
    // result stays primary. URLs are from the config, so the label set is bounded.
    this.checkUrlAnswers = new Counter({
      name: 'mirrorlb_check_url_answers_total',
      help: 'Answers of each check URL by class (primary, not_primary, unexpected, error, timeout)',
      labelNames: ['mirror', 'member', 'url', 'answer'],
      registers: r,
      collect() {
        for (const c of checks()) exportTallies(this, c.answerTallies());
      },
    });
    this.checkUrlUnexpected = new Gauge({
      name: 'mirrorlb_check_url_unexpected',
      help: "1 while the check URL's last answer was unexpected (an error page, a redirect, a 404): a failed check, never a demotion",
      labelNames: ['mirror', 'member', 'url'],
      registers: r,
    });
    this.configReloads = new Counter({
      name: 'mirrorlb_config_reloads_total',
      help: 'Config reloads by result (ok, invalid)',
      labelNames: ['result'],
      registers: r,
    });
    this.primaryConflicts = new Counter({
      name: 'mirrorlb_primary_conflicts_total',
      help: 'Times two members of the mirror claimed primary at once',
      labelNames: ['mirror'],
      registers: r,
    });
    this.sessionsCut = new Counter({
      name: 'mirrorlb_sessions_cut_total',
      help: 'Sessions closed by the balancer, by reason (demoted, disabled, removed, shutdown)',
      labelNames: ['mirror', 'member', 'reason'],
      registers: r,
    });
    this.noPrimarySeconds = new Histogram({
      name: 'mirrorlb_no_primary_seconds',
      help: 'How long the mirror had no primary accepting clients, per failover',
      labelNames: ['mirror'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    this.sessionsRedispatched = new Counter({
      name: 'mirrorlb_sessions_redispatched_total',
      help: 'Sessions the member never answered, moved to the new primary instead of cut when it lost the role',
      labelNames: ['mirror', 'member'],
      registers: r,
    });
    new Gauge({
      name: 'mirrorlb_build_info',
      help: 'Always 1; the version label says which mirrorlb runs',
      labelNames: ['version'],
      registers: r,
    }).set({ version: VERSION }, 1);
    for (const result of ['ok', 'invalid']) this.configReloads.inc({ result }, 0);
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: registry, prefix: '' });
      for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
    }
  }

  /**
   * The plain-number counters of one member, the same object every time (the session table
   * keeps it; a removed member's figures stay, as prom-client's series would).
   */
  member(mirror: string, member: string): MemberCounters {
    return this.members.get(mirror, member, () => new MemberCounters(mirror, member));
  }

  /** The health-check counts of one member, the same object every time (kept by the daemon). */
  checks(mirror: string, member: string): CheckCounters {
    return this.checkCounters.get(mirror, member, () => new CheckCounters(mirror, member));
  }

  /**
   * Creates every series of a mirror at zero, so that a scrape shows each counter from its
   * first value on (rate() and absent() need the series before the first event) and
   * dashboards list members that never had a session. Idempotent and cheap; values that
   * already exist are not touched. Histograms are left alone: prom-client's zero() would
   * reset them, and their first observation comes with the first check anyway.
   */
  seedMirror(mirror: string, members: readonly string[]): void {
    this.failovers.inc({ mirror }, 0);
    this.primaryConflicts.inc({ mirror }, 0);
    this.held.inc({ mirror }, 0);
    this.connectsWaiting.inc({ mirror }, 0);
    this.mirrorHasPrimary.inc({ mirror }, 0);
    for (const member of members) {
      const labels = { mirror, member };
      this.memberPrimary.inc(labels, 0);
      this.memberReachable.inc(labels, 0);
      this.connectRetries.inc(labels, 0);
      this.connectionsActive.inc(labels, 0);
      this.connectionsTotal.inc(labels, 0);
      this.bytes.inc({ ...labels, direction: 'in' }, 0);
      this.bytes.inc({ ...labels, direction: 'out' }, 0);
      for (const result of HEALTH_RESULTS) this.healthChecks.inc({ ...labels, result }, 0);
    }
  }
}
