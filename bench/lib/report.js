// The Markdown table of a bench run: what a reader needs to judge the figures (the machine,
// the pinning, the load on the machine) and the medians with the mirrorlb/haproxy ratios.
import { workersMarkdown } from './workers.js';
import { stormMarkdown } from './storm.js';
import { fmt, fmtRatio } from './util.js';
import { replicasMarkdown } from './replicas.js';
import { readsMarkdown } from './reads.js';

const LABELS = { mirrorlb: 'mirrorlb', 'haproxy-seed': 'haproxy (seed)', 'haproxy-tuned': 'haproxy (tuned)' };

function ms(x) {
  return x === null || x === undefined ? 'never' : `${fmt(x, x < 10 ? 1 : 0)} ms`;
}

function failoverTable(f) {
  const lines = [];
  lines.push(
    '| scenario | balancer | first client on new primary (median, range) | mirrorlb ÷ this | to demoted member after demotion (median) | failed connects (median) | failure kinds (all runs) | old sessions closed after (median) | runs |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
  );
  for (const sc of f.scenarios) {
    for (const row of f.summary.filter((r) => r.scenario === sc.id)) {
      const kinds = Object.entries(row.failures_by_kind)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${fmt(n)}`)
        .join(', ');
      const old =
        row.old_sessions_closed_ms === null
          ? row.old_sessions_left_open_runs > 0
            ? `still open at end (≥ ${fmt(row.window_ms / 1000, 1)} s)`
            : '–'
          : `${ms(row.old_sessions_closed_ms)}${row.old_sessions_left_open_runs ? ` (${row.old_sessions_left_open_runs} runs left some open)` : ''}`;
      const reached = (row.failover_ms_all ?? []).filter((x) => x !== null);
      const range = reached.length > 1 ? ` (${fmt(Math.min(...reached))}–${fmt(Math.max(...reached))})` : '';
      const failover =
        row.failover_ms === null
          ? 'never'
          : `${ms(row.failover_ms)}${range}${row.never_reached_new ? `, ${row.never_reached_new} runs never` : ''}`;
      lines.push(
        `| ${sc.label} | ${LABELS[row.balancer] ?? row.balancer} | ${failover} | ${row.balancer === 'mirrorlb' ? '' : fmtRatio(row.mirrorlb_ratio)} | ${fmt(row.misrouted)} | ${fmt(row.failures)} | ${kinds || 'none'} | ${old} | ${row.runs} |`,
      );
    }
  }
  return lines.join('\n');
}

function datapathTable(d) {
  const lines = [];
  const targets = ['direct', 'haproxy', 'mirrorlb'].filter((t) => d.tests.some((x) => t in x.targets));
  lines.push(
    `| test | ${targets.join(' | ')} | mirrorlb ÷ haproxy |`,
    `| --- | ${targets.map(() => '---:').join(' | ')} | ---: |`,
  );
  for (const t of d.tests) {
    if (t.test === 'rtt') {
      for (const [k, name] of [
        ['p50', 'p50'],
        ['p99', 'p99'],
        ['p999', 'p99.9'],
      ]) {
        const cells = targets.map((x) => (t.targets[x] ? fmt(t.targets[x][k], 1) : '–'));
        lines.push(
          `| round trip ${name} (µs, lower is better) | ${cells.join(' | ')} | ${fmtRatio(t.targets.mirrorlb?.ratio?.[k])} |`,
        );
      }
    } else {
      const digits = t.unit === 'Gbit/s' ? 2 : 0;
      const cells = targets.map((x) =>
        t.targets[x]
          ? `${fmt(t.targets[x].value, digits)}${t.targets[x].errors ? ` (${fmt(t.targets[x].errors)} errors)` : ''}`
          : '–',
      );
      lines.push(
        `| ${t.label} (${t.unit}) | ${cells.join(' | ')} | ${fmtRatio(t.targets.mirrorlb?.ratio)} |`,
      );
      if (hasCpu(t)) {
        const cpu = targets.map((x) => fmt(t.targets[x]?.cpu_us_per_op, 1));
        lines.push(`| ${cpuLabel(t)} | ${cpu.join(' | ')} | ${fmtRatio(t.targets.mirrorlb?.cpu_ratio)} |`);
      }
    }
  }
  return lines.join('\n');
}

/** Whether a rate test has the balancers' CPU per operation (results from before it have not). */
function hasCpu(t) {
  return Object.values(t.targets).some((x) => typeof x.cpu_us_per_op === 'number');
}

function cpuLabel(t) {
  return `… the balancer's CPU per ${t.test === 'cps' ? 'connection' : 'request'} (µs, lower is better)`;
}

function rssTable(rss, n) {
  const lines = [
    `| balancer | RSS idle | RSS with ${fmt(n)} idle sessions | increase | per session |`,
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [t, r] of Object.entries(rss)) {
    lines.push(
      `| ${t} | ${fmt(r.rss_idle_mib, 1)} MiB | ${fmt(r.rss_sessions_mib, 1)} MiB${r.sessions < n ? ` (only ${fmt(r.sessions)} opened)` : ''} | ${fmt(r.delta_mib, 1)} MiB | ${fmt(r.per_session_kib, 2)} KiB |`,
    );
  }
  return lines.join('\n');
}

/**
 * A test-by-test comparison of targets of one data-path part: the value of each target in
 * `shown`, then the ratio of each target in `ratioOf` (to the part's reference, as the part
 * computed it). The round trip gives three rows (p50, p99, p99.9).
 */
function compareTable(part, head, shown, ratioOf) {
  const lines = [head, `| --- |${' ---: |'.repeat(shown.length + ratioOf.length)}`];
  for (const t of part.tests) {
    const rows =
      t.test === 'rtt'
        ? [
            ['p50', 'p50'],
            ['p99', 'p99'],
            ['p999', 'p99.9'],
          ].map(([k, name]) => ({
            label: `round trip ${name} (µs, lower is better)`,
            value: (x) => x?.[k],
            ratio: (x) => x?.ratio?.[k],
            digits: 1,
          }))
        : [
            { label: `${t.label} (${t.unit})`, value: (x) => x?.value, ratio: (x) => x?.ratio, digits: 0 },
            ...(hasCpu(t)
              ? [
                  {
                    label: cpuLabel(t),
                    value: (x) => x?.cpu_us_per_op,
                    ratio: (x) => x?.cpu_ratio,
                    digits: 1,
                  },
                ]
              : []),
          ];
    for (const r of rows) {
      const cells = [
        ...shown.map((k) => fmt(r.value(t.targets[k]), r.digits)),
        ...ratioOf.map((k) => fmtRatio(r.ratio(t.targets[k]))),
      ];
      lines.push(`| ${r.label} | ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/** The bare data path vs the daemon with 1 and 7 mirrors (ratios to the bare path). */
function daemonCostTable(hc) {
  return compareTable(
    hc,
    '| test | bare data path | daemon, 1 mirror | daemon, 7 mirrors | 1 mirror ÷ bare | 7 mirrors ÷ bare |',
    ['bare', 'mirrorlb', 'mirrorlb-7mirrors'],
    ['mirrorlb', 'mirrorlb-7mirrors'],
  );
}

/** mirrorlb against one variant of itself (ratios of the variant to mirrorlb). */
function healthTable(hc, other = 'mirrorlb-4mirrors', head = '| test | 1 mirror | 4 mirrors | 4 ÷ 1 |') {
  return compareTable(hc, head, ['mirrorlb', other], [other]);
}

const PATRONI_FAULTS = {
  switchover: '`patronictl switchover`',
  kill: 'leader SIGKILL',
  stop: 'leader SIGSTOP',
};
const PATRONI_LABELS = {
  mirrorlb: 'mirrorlb',
  'haproxy-patroni': "haproxy (Patroni's example)",
  'haproxy-patroni-tuned': 'haproxy (tuned)',
};

export function patroniTable(p) {
  const lines = [
    '| fault | balancer | first write on the new leader, from the fault | … after its REST said 200 | failed writes (median) | failure kinds (all runs) | to the old leader after it lost the role | old-leader sessions open after it lost the role | acked writes lost (per run) |',
    '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const r of p.summary) {
    const kinds = Object.entries(r.failures_all_runs)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${fmt(n)}`)
      .join(', ');
    const open =
      r.old_sessions_left_open_runs > 0
        ? `still open at end in ${r.old_sessions_left_open_runs} run(s)`
        : ms(r.old_sessions_open_ms);
    const lost = r.lost_per_run.reduce((a, b) => a + b, 0);
    lines.push(
      `| ${PATRONI_FAULTS[r.fault] ?? r.fault} | ${PATRONI_LABELS[r.balancer] ?? r.balancer} | ${ms(r.first_write_ms)} | ${ms(r.first_write_after_200_ms)} | ${fmt(r.failed)} | ${kinds || 'none'} | ${fmt(r.to_old_after_lost)} | ${open} | ${fmt(lost)} (${r.lost_per_run.join(', ')}) |`,
    );
  }
  return lines.join('\n');
}

export function markdown(result) {
  const m = result.machine;
  const out = [];
  out.push(`# mirrorlb bench: ${result.date} (${result.mode})`, '');
  out.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB, ${m.kernel}; Node ${m.node}; ${m.haproxy ?? 'no haproxy'}; nginx ${m.nginx ?? '–'}; ${m.wrk ?? ''}; ${m.iperf3 ?? ''}; ${m.sockperf ?? ''}. mirrorlb ${m.mirrorlb} (${m.commit ?? 'no git'}).`,
    '',
    `Pinning: ${result.pinning}`,
    '',
    `Load average (1/5/15 min) at start: ${m.loadavg_at_start.join(' / ')}${result.failover?.loadavg_at_end ? `; after failover: ${result.failover.loadavg_at_end.join(' / ')}` : ''}${result.datapath?.loadavg_at_end ? `; after data path: ${result.datapath.loadavg_at_end.join(' / ')}` : ''}${result.storm?.loadavg_at_end ? `; after storm: ${result.storm.loadavg_at_end.join(' / ')}` : ''}${result.patroni?.loadavg_at_end ? `; after Patroni: ${result.patroni.loadavg_at_end.join(' / ')}` : ''}${result.reads?.loadavg_at_end ? `; after reads: ${result.reads.loadavg_at_end.join(' / ')}` : ''}. Anything else running on the machine shows up in these figures.`,
    '',
    `Command: \`${result.command}\``,
    '',
  );
  if (result.notes?.length) out.push(...result.notes.map((n) => `> ${n}`), '');

  const f = result.failover;
  if (f && !f.error) {
    const s = f.settings;
    out.push('## Failover', '');
    out.push(
      `Two simulated members behind each balancer (${s.members_network}). ${s.clients} clients each open a connection every ${s.pause_ms} ms without waiting for the previous one (${Math.round((s.clients * 1000) / s.pause_ms)} connections/s), read the member's greeting line and close (client timeout ${s.client_timeout_ms} ms); ${s.holders} sessions are opened on the old primary before each event. The new primary is set ${s.gap_ms} ms after the old one is demoted. "First client on new primary" runs from that moment to the first greeting from it; "to demoted member" counts connections started after the demotion that the old member greeted; failed connects are refused, reset, closed before the greeting or timed out. Medians of ${s.reps} run(s) per cell, balancers alternating; windows end ${s.tail_ms} ms after the last bad connection or after ${s.cap_ms / 1000} s.`,
      '',
      failoverTable(f),
      '',
      'Configs: mirrorlb with its defaults; haproxy as the seed had it (`bench/haproxy-seed.cfg` + `bench/haproxy-seed-check.sh`); haproxy tuned as Patroni documents (`bench/haproxy-tuned.cfg`).',
      '',
    );
    if (result.svg) out.push(`![One switchover per balancer](${result.svg})`, '');
  } else if (f?.error) {
    out.push('## Failover', '', `Failed: ${f.error}`, '');
  }

  const d = result.datapath;
  if (d && !d.error) {
    const s = d.settings;
    out.push('## Data path', '');
    out.push(
      `Same backend direct, through haproxy (\`bench/haproxy-datapath.cfg\`: nbthread 1, mode tcp) and through mirrorlb (1 mirror of 2 members, default checks). Medians of ${s.reps} run(s) of ${s.duration_s} s each after a ${s.warmup_s} s warm-up, targets alternating. Backends: nginx \`return 200\` (wrk), iperf3 server, sockperf server. "CPU per request" and "per connection" are the balancer process's own CPU time, user and kernel, all threads (/proc), over each measurement, divided by the requests wrk completed: unlike the rates, they do not depend on which side was the bottleneck.`,
      '',
    );
    if (d.tests.length) out.push(datapathTable(d), '');
    if (d.rss) {
      out.push(`### Memory with ${fmt(s.idle_sessions)} idle sessions`, '');
      if (s.idle_sessions_note) out.push(`(${s.idle_sessions_note}.)`, '');
      out.push(rssTable(d.rss, s.idle_sessions), '');
    }
    if (d.health_checks?.tests?.length) {
      // Results from before the bare target compared 1 vs 4 mirrors.
      const bare = d.health_checks.tests.some((t) => t.targets.bare);
      out.push(
        bare ? "### The daemon's own cost" : "### Health checks' cost",
        '',
        bare
          ? `${d.health_checks.note[0].toUpperCase()}${d.health_checks.note.slice(1)}.`
          : `mirrorlb with ${d.health_checks.note}.`,
        '',
        bare ? daemonCostTable(d.health_checks) : healthTable(d.health_checks),
        '',
      );
    }
    if (d.metrics?.tests?.length) {
      out.push(
        "### Metrics' cost",
        '',
        `mirrorlb with ${d.metrics.note}.`,
        '',
        healthTable(d.metrics, 'mirrorlb-nometrics', '| test | metrics on | metrics off | off ÷ on |'),
        '',
      );
    }
    if (d.metrics?.skipped) out.push(`Metrics on vs off: skipped — ${d.metrics.skipped}.`, '');
  } else if (d?.error) {
    out.push('## Data path', '', `Failed: ${d.error}`, '');
  }

  const storm = result.storm;
  if (storm && !storm.error) out.push(...stormMarkdown(storm));
  else if (storm?.error) out.push('## Reconnect storm', '', `Failed: ${storm.error}`, '');

  out.push(...replicasMarkdown(result.replicas));
  out.push(...workersMarkdown(result.workers));

  const p = result.patroni;
  if (p && !p.error && p.summary) {
    const s = p.settings;
    out.push('## Patroni (PostgreSQL)', '');
    out.push(
      `A real cluster: ${s.dcs}, two Patroni nodes with PostgreSQL 15, ${s.replication} replication, ttl ${s.ttl_s} s, loop_wait ${s.loop_wait_s} s. All three balancers in front of it at once, each with its own clients (${s.clients_per_balancer}; node-postgres); every fault hits all three at the same moment. "First write" is the first acknowledged INSERT on the new leader, from the fault and from the moment the new leader's REST \`/primary\` first answered 200. "To the old leader after it lost the role": writes it executed, or refused as shutting down, that were sent after it stopped being a writable primary (switchover: its REST no longer said running master; kill, stop: the fault). "Lost": acknowledged writes missing on the new leader. Medians of ${s.reps} run(s); failure kinds and losses summed over all runs (losses per run in brackets).`,
      '',
      patroniTable(p),
      '',
      "Configs: mirrorlb with [`examples/patroni.yml`](../../examples/patroni.yml) (see [docs/patroni.md](../../docs/patroni.md)); haproxy as Patroni's example (`bench/haproxy-patroni-example.cfg`: `OPTIONS /primary`, `inter 3s fall 3 rise 2`, `on-marked-down shutdown-sessions`) and tuned (`bench/haproxy-patroni-tuned.cfg`: `inter 1s fall 2 rise 1`).",
      '',
    );
  } else if (p?.error) {
    out.push('## Patroni (PostgreSQL)', '', `Failed: ${p.error}`, '');
  }

  out.push(...readsMarkdown(result.reads));

  const skipped = [
    ...(result.skipped ?? []),
    ...(f?.skipped ?? []),
    ...(d?.skipped ?? []),
    ...(storm?.skipped ?? []),
    ...(result.replicas?.skipped ?? []),
    ...(p?.skipped ?? []),
    ...(result.reads?.skipped ?? []),
  ];
  if (skipped.length) {
    out.push('## Skipped', '', ...skipped.map((s) => `- ${s.what}: ${s.reason}`), '');
  }
  return `${out.join('\n')}\n`;
}
