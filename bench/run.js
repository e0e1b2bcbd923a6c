#!/usr/bin/env node
// `npm run bench` — failover and data-path figures for mirrorlb and haproxy, side by side,
// on this machine. `npm run bench -- --quick` is the smoke run CI uses (a few seconds per
// part; nothing is asserted about the figures). See bench/README.md.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDatapath } from './lib/datapath.js';
import { runFailover } from './lib/failover.js';
import { runStorm } from './lib/storm.js';
import { runReplicas } from './lib/replicas.js';
import { runPatroni } from './lib/patroni.js';
import { runReads } from './lib/reads.js';
import { runWorkers } from './lib/workers.js';
import { describeMachine } from './lib/machine.js';
import { has, interrupted, run, stopAll, warnings } from './lib/proc.js';
import { markdown } from './lib/report.js';
import { switchoverSvg } from './lib/svg.js';
import { ensureTools } from './lib/tools.js';
import { log } from './lib/util.js';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');
const NOFILE = 65536;
const ALL_PARTS = ['failover', 'datapath', 'replicas', 'storm', 'patroni', 'workers', 'reads'];
// Parts on a real Patroni cluster: full runs only, never in --quick (CI).
const FULL_ONLY = ['patroni', 'reads'];

const USAGE = `usage: npm run bench [-- options]

  --quick            smoke run: one repetition, short windows (CI); results go to bench/results/tmp/
  --part P           failover | datapath | replicas | storm | patroni | workers | reads (repeat or
                     comma-separate; default all; patroni and reads only in a full run). A run of some parts only writes
                     its <date>-<parts>.{json,md} and leaves latest.md and bench/README.md alone
  --scenario S       failover scenarios to run: switchover,killed,hung,blackholed (default all)
  --reps N           repetitions per cell (default: failover 5, data path 3, storm 3, patroni 3; quick 1)
  --storm-clients N  clients in the reconnect storm (default 2000; quick 200)
  --out DIR          where results go (default bench/results, or bench/results/tmp with --quick)
  --no-install       never apt-get install a missing tool; skip what needs it
  --keep-logs        keep the child processes' logs and configs (always kept when a part fails)
  --render FILE      rewrite FILE's .md (and latest.md, and the README for a full run) from its .json
  --help
`;

function parse() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: 'boolean', default: false },
      part: { type: 'string', multiple: true },
      scenario: { type: 'string', multiple: true },
      reps: { type: 'string' },
      'storm-clients': { type: 'string' },
      out: { type: 'string' },
      'no-install': { type: 'boolean', default: false },
      'keep-logs': { type: 'boolean', default: false },
      render: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const list = (v) => (v ?? []).flatMap((x) => x.split(',')).filter(Boolean);
  const parts = list(values.part);
  for (const p of parts) if (!ALL_PARTS.includes(p)) throw new Error(`unknown part ${p}`);
  for (const p of FULL_ONLY)
    if (values.quick && parts.includes(p)) throw new Error(`the ${p} part runs in a full run only`);
  const reps = values.reps === undefined ? null : Number(values.reps);
  if (reps !== null && !(Number.isInteger(reps) && reps > 0))
    throw new Error('--reps must be a positive integer');
  const stormClients = values['storm-clients'] === undefined ? null : Number(values['storm-clients']);
  if (stormClients !== null && !(Number.isInteger(stormClients) && stormClients > 0))
    throw new Error('--storm-clients must be a positive integer');
  return {
    quick: values.quick,
    parts: parts.length ? parts : values.quick ? ALL_PARTS.filter((p) => !FULL_ONLY.includes(p)) : ALL_PARTS,
    partial: parts.length > 0 && ALL_PARTS.some((p) => !parts.includes(p)),
    stormClients,
    scenarios: list(values.scenario),
    reps,
    out: values.out ?? null,
    install: !values['no-install'],
    keepLogs: values['keep-logs'],
    render: values.render ?? null,
    help: values.help,
  };
}

/**
 * The bench re-runs itself once with a raised open-files limit (10,000 idle sessions need
 * 20,000 descriptors in the balancer) and pinned to the load CPU; every child inherits both.
 */
function reexec() {
  const cpus = allowedCpus();
  const pin = cpus.length >= 2 && has('taskset') ? ['taskset', '-c', String(cpus[0])] : [];
  const child = spawn(
    'sh',
    [
      '-c',
      `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null; exec "$@"`,
      'sh',
      ...pin,
      process.execPath,
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, MLB_BENCH_INNER: '1', MLB_BENCH_CPUS: cpus.join(',') } },
  );
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

/** CPUs this process may run on (a container may be limited to, say, 2-3), in order. */
function allowedCpus() {
  // The re-run bench is itself pinned to one CPU; the list it may use comes from its parent.
  if (process.env.MLB_BENCH_CPUS) return process.env.MLB_BENCH_CPUS.split(',').map(Number);
  try {
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) {
      return m[1].split(',').flatMap((part) => {
        const [a, b = a] = part.split('-').map(Number);
        return Array.from({ length: b - a + 1 }, (_, i) => a + i);
      });
    }
  } catch {
    // not Linux
  }
  return os.cpus().map((_, i) => i);
}

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

function newestMtime(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when missing; returns a note when it is older than src/ (the bench measures what is built). */
async function ensureBuilt() {
  const main = path.join(repoRoot, 'dist', 'cli', 'main.js');
  if (fs.existsSync(main)) {
    const stale = newestMtime(path.join(repoRoot, 'src')) > fs.statSync(main).mtimeMs;
    return stale
      ? 'dist/ is older than src/: this run measured the last build (npm run build to refresh).'
      : null;
  }
  log('bench: dist/ missing, building with tsc');
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await run(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json')], {
    timeoutMs: 300_000,
  });
  if (!fs.existsSync(main)) throw new Error(`build failed: ${r.stdout}${r.stderr}`);
  return null;
}

/** Puts a full run's tables into bench/README.md between its latest:start/end markers. */
async function updateReadme(md) {
  const file = path.join(benchDir, 'README.md');
  if (!fs.existsSync(file)) return;
  const text = fs.readFileSync(file, 'utf8');
  const start = '<!-- latest:start -->';
  const end = '<!-- latest:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) return;
  // One heading level down, and links relative to bench/ instead of bench/results/.
  const body = md.replace(/^(#+) /gm, '#$1 ').replace('](switchover.svg)', '](results/switchover.svg)');
  let next = `${text.slice(0, a + start.length)}\n${body}${text.slice(b)}`;
  // The repository's lint runs prettier --check over this file; format the way it would.
  try {
    const prettier = await import('prettier');
    const options = (await prettier.resolveConfig(file)) ?? {};
    next = await prettier.format(next, { ...options, filepath: file });
  } catch {
    // prettier is a dev dependency; without it the table is still right, only not aligned
  }
  fs.writeFileSync(file, next);
}

/** Re-renders the tables of a result file (after a change to the report, without measuring again). */
async function render(file) {
  const result = JSON.parse(fs.readFileSync(file, 'utf8'));
  const md = markdown(result);
  fs.writeFileSync(file.replace(/\.json$/, '.md'), md);
  if (!result.partial) fs.writeFileSync(path.join(path.dirname(file), 'latest.md'), md);
  if (
    result.mode === 'full' &&
    !result.partial &&
    path.resolve(path.dirname(file)) === path.join(benchDir, 'results')
  ) {
    await updateReadme(md);
  }
  process.stdout.write(md);
  return 0;
}

async function main() {
  let opts;
  try {
    opts = parse();
  } catch (err) {
    process.stderr.write(`bench: ${/** @type {Error} */ (err).message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts.render) return render(opts.render);
  const started = new Date();
  const nofile = Number((await run('sh', ['-c', 'ulimit -n'])).stdout.trim()) || 1024;
  const cpus = allowedCpus();
  const pinned = cpus.length >= 2 && has('taskset');
  const cpuSet = pinned ? { balancer: cpus[1], load: cpus[0] } : { balancer: null, load: null };
  const pinning = pinned
    ? `balancer under test alone on CPU ${cpus[1]} (taskset -c ${cpus[1]}); clients, load generators, backends, simulated members and the bench itself on CPU ${cpus[0]} (taskset -c ${cpus[0]})${cpus.length > 2 ? `; CPUs ${cpus.slice(2).join(',')} unused` : ''}.`
    : `not pinned (${cpus.length < 2 ? 'fewer than 2 CPUs' : 'no taskset'}): balancer and load share the CPUs, so the data-path figures understate both balancers.`;

  const buildNote = await ensureBuilt();
  if (buildNote) log(`bench: ${buildNote}`);
  const tools = await ensureTools(
    ['haproxy', 'nginx', 'wrk', 'iperf3', 'sockperf', 'curl', 'ip', 'iptables'],
    {
      install: opts.install,
    },
  );
  const machine = await describeMachine(repoRoot);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mirrorlb-bench-'));
  const mode = opts.quick ? 'quick' : 'full';
  const result = {
    date: started.toISOString(),
    mode,
    parts: opts.parts,
    partial: opts.partial,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    pinning,
    nofile,
    /** @type {string[]} */
    notes: [],
    skipped: Object.entries(tools.missing).map(([what, reason]) => ({ what, reason })),
    tools_installed: tools.installed,
  };
  if (buildNote) result.notes.push(buildNote);
  if (opts.quick)
    result.notes.push(
      'Quick run: one repetition and short windows, to keep the harness working; not figures to quote.',
    );
  log(`bench: ${mode} run; ${pinning}`);
  log(`bench: logs and generated configs in ${logDir}`);
  const ctx = {
    repoRoot,
    benchDir,
    logDir,
    quick: opts.quick,
    reps: opts.reps,
    cpus: cpuSet,
    tools,
    only: opts.scenarios,
    nofile,
    stormClients: opts.stormClients,
  };

  let failed = false;
  const part = async (name, fn) => {
    log(`bench: ${name}`);
    try {
      return await fn();
    } catch (caught) {
      failed = true;
      const err = /** @type {Error & { code?: string }} */ (caught);
      log(`bench: ${name} failed: ${err.stack ?? err.message}`);
      return { error: `${err.code ? `${err.code}: ` : ''}${err.message}` };
    } finally {
      await stopAll();
    }
  };
  if (opts.parts.includes('failover')) result.failover = await part('failover', () => runFailover(ctx));
  if (opts.parts.includes('datapath')) result.datapath = await part('data path', () => runDatapath(ctx));
  if (opts.parts.includes('replicas')) result.replicas = await part('replicas', () => runReplicas(ctx));
  if (opts.parts.includes('storm')) result.storm = await part('reconnect storm', () => runStorm(ctx));
  if (opts.parts.includes('patroni')) result.patroni = await part('patroni', () => runPatroni(ctx));
  if (opts.parts.includes('workers')) result.workers = await part('workers', () => runWorkers(ctx));
  if (opts.parts.includes('reads')) result.reads = await part('reads', () => runReads(ctx));

  const outDir = opts.out
    ? path.resolve(opts.out)
    : path.join(benchDir, 'results', ...(opts.quick ? ['tmp'] : []));
  fs.mkdirSync(outDir, { recursive: true });
  const name = `${stamp(started)}${opts.quick ? '-quick' : ''}${opts.partial ? `-${opts.parts.join('-')}` : ''}`;
  const timelines = result.failover?.timelines;
  if (timelines && Object.keys(timelines).length) {
    const labels = Object.fromEntries(result.failover.balancers.map((b) => [b.id, b.label]));
    const svg = switchoverSvg(timelines, labels);
    fs.writeFileSync(path.join(outDir, 'switchover.svg'), svg);
    result.svg = 'switchover.svg';
    if (!opts.quick && !opts.out && !opts.partial) {
      fs.mkdirSync(path.join(repoRoot, 'docs'), { recursive: true });
      fs.writeFileSync(path.join(repoRoot, 'docs', 'switchover.svg'), svg);
    }
  }
  // Raw timelines are in the SVG; the JSON keeps the per-run figures.
  if (result.failover) delete result.failover.timelines;
  result.finished = new Date().toISOString();
  result.notes.push(...warnings);
  const md = markdown(result);
  fs.writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, `${name}.md`), md);
  if (!opts.partial) fs.writeFileSync(path.join(outDir, 'latest.md'), md);
  if (!opts.quick && !opts.out && !opts.partial) await updateReadme(md);
  process.stdout.write(md);
  log(
    `bench: wrote ${path.relative(process.cwd(), path.join(outDir, `${name}.json`))}, ${name}.md${opts.partial ? '' : ' and latest.md'}`,
  );
  if (failed || opts.keepLogs) log(`bench: logs kept in ${logDir}`);
  else fs.rmSync(logDir, { recursive: true, force: true });
  return failed ? 1 : 0;
}

if (!process.env.MLB_BENCH_INNER) {
  reexec();
} else {
  const stop = () => {
    interrupted().finally(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      log(`bench: ${err.stack ?? err.message}`);
      process.exitCode = 1;
    },
  );
}
