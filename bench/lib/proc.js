// Child processes of the bench, and the process primitives the fault suite
// (test/faults/lib/{proc,netns}.ts) builds on: one way to run a command to completion, to
// learn how a child ended, and to stop one by its pid within a bound.
//
// Every child of the bench is started through here so it can be pinned to a CPU, put in
// the members' network namespace, logged to a file, and stopped by its pid when the bench
// ends (also on Ctrl-C or an error). Nothing is ever killed by name.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BenchError, waitFor } from './util.js';

/**
 * @typedef {object} Exit How a child ended: its code (null when a signal ended it, or it
 *   never started), the signal, and the spawn error when it could not start at all.
 * @property {number | null} code
 * @property {NodeJS.Signals | null} signal
 * @property {Error} [error]
 */

/**
 * @typedef {object} CommandResult What a command run to completion left: its exit code
 *   (null: killed, by the timeout or a signal), its output, whether the timeout killed it,
 *   and the spawn error when it could not start.
 * @property {number | null} code
 * @property {string} stdout
 * @property {string} stderr
 * @property {boolean} timedOut
 * @property {Error | null} error
 */

/**
 * @typedef {object} BenchProc A long-running child of the bench (see start()).
 * @property {string} name
 * @property {number | undefined} pid
 * @property {string} logFile
 * @property {number | string | null} exitCode its exit code or the signal that ended it;
 *   null while it runs
 * @property {Promise<Exit>} exited
 * @property {(graceMs?: number) => Promise<void>} stop SIGTERM, then SIGKILL after graceMs
 */

/**
 * @typedef {object} Tracked A child the bench kills when it ends (a BenchProc, or a command
 *   run()).
 * @property {string} name
 * @property {number | undefined} pid
 * @property {number | string | null} exitCode
 * @property {Promise<unknown>} exited
 */

/**
 * The environment for a child: `env` without what makes tap instrument every Node process
 * it sees (NODE_OPTIONS preloads, V8 coverage), so a balancer started by a test runs at its
 * real speed and the timings are its own.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {NodeJS.ProcessEnv}
 */
export function childEnv(env = process.env) {
  /** @type {NodeJS.ProcessEnv} */
  const out = {};
  for (const [k, v] of Object.entries(env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k.startsWith('_TAPJS_') || k.startsWith('TAP_'))
      continue;
    out[k] = v;
  }
  return out;
}

/**
 * Settles when `child` has ended: on 'exit', or on 'error' when it could not start.
 * @param {import('node:child_process').ChildProcess} child
 * @returns {Promise<Exit>}
 */
export function exitOf(child) {
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    // `on`, not `once`: a second 'error' without a listener would throw.
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
  });
}

/**
 * Sends `sig` to `pid` (nothing when it is gone already) and waits up to `ms` for `exited`.
 * @param {number | undefined} pid
 * @param {NodeJS.Signals} sig
 * @param {Promise<unknown>} exited
 * @param {number} ms
 * @returns {Promise<boolean>} whether it had exited within `ms`
 */
export async function signalAndWait(pid, sig, exited, ms) {
  if (pid !== undefined) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([exited.then(() => true), late]);
  clearTimeout(timer);
  return /** @type {boolean} */ (done);
}

/**
 * Runs `argv` to completion and collects its output; never rejects: a command that cannot
 * start resolves with `error`, one still running after `timeoutMs` is killed (SIGKILL) and
 * resolves with `timedOut`. `input` is written to its stdin (none: stdin is /dev/null).
 * @param {readonly string[]} argv
 * @param {{ input?: string, timeoutMs: number, env: NodeJS.ProcessEnv }} opts
 * @returns {{ child: import('node:child_process').ChildProcess, result: Promise<CommandResult> }}
 */
export function runCommand(argv, { input, timeoutMs, env }) {
  const [cmd = '', ...args] = argv;
  const child = spawn(cmd, args, {
    env,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (/** @type {Buffer} */ c) => (stdout += c.toString()));
  child.stderr?.on('data', (/** @type {Buffer} */ c) => (stderr += c.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const result = new Promise((resolve) => {
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr, timedOut, error });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, error: null });
    });
  });
  if (child.stdin) {
    // A command that exits without reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  }
  return { child, result };
}

/** @type {Set<Tracked>} */
const live = new Set();
/**
 * Things worth telling the reader that are not figures (a child that ignored SIGTERM, ...).
 * @type {string[]}
 */
export const warnings = [];
let cleanupInstalled = false;

/**
 * Whether `cmd` is on PATH.
 * @param {string} cmd
 */
export function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * argv prefix that runs a command in a namespace and on a CPU (each wrapper execs, so the
 * pid stays the command's).
 * @param {string} cmd
 * @param {readonly string[]} args
 * @param {{ cpu?: number | null, netns?: string | null }} where
 * @returns {string[]}
 */
function wrap(cmd, args, { cpu, netns }) {
  let argv = [cmd, ...args];
  if (cpu !== null && cpu !== undefined) argv = ['taskset', '-c', String(cpu), ...argv];
  if (netns) argv = nsExec(netns, argv);
  return argv;
}

/**
 * argv that runs `argv` inside the network namespace `ns`.
 * @param {string} ns
 * @param {readonly string[]} argv
 * @returns {string[]}
 */
export function nsExec(ns, argv) {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const p of live) {
      if (p.pid === undefined) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * @typedef {object} StartOptions
 * @property {string} name names the log file, `<logDir>/<name>.log`
 * @property {string} cmd
 * @property {readonly string[]} [args]
 * @property {number | null} [cpu] pinned to this CPU (taskset)
 * @property {string | null} [netns] run in this network namespace
 * @property {Record<string, string>} [env] added to the bench's environment
 * @property {string} logDir
 * @property {string} [cwd]
 */

/**
 * Starts a long-running child. Its stdout and stderr go to `<logDir>/<name>.log` so a failed
 * run can be read afterwards; `stop()` sends SIGTERM, then SIGKILL after `graceMs`.
 * @param {StartOptions} opts
 * @returns {BenchProc}
 */
export function start({ name, cmd, args = [], cpu = null, netns = null, env = {}, logDir, cwd }) {
  installCleanup();
  const logFile = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const [bin = '', ...rest] = wrap(cmd, args, { cpu, netns });
  const child = spawn(bin, rest, {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
    cwd,
  });
  fs.closeSync(fd);
  /** @type {BenchProc} */
  const proc = {
    name,
    pid: child.pid,
    logFile,
    exitCode: null,
    exited: exitOf(child).then((exit) => {
      live.delete(proc);
      proc.exitCode = exit.error ? errnoCode(exit.error) : (exit.code ?? exit.signal);
      return exit;
    }),
    stop: (graceMs = 2000) => stop(proc, graceMs),
  };
  if (child.pid !== undefined) live.add(proc);
  return proc;
}

/**
 * The errno name of a spawn error (ENOENT, ...), or 'error'.
 * @param {Error} err
 * @returns {string}
 */
function errnoCode(err) {
  const code = /** @type {NodeJS.ErrnoException} */ (err).code;
  return code ?? 'error';
}

/**
 * SIGTERM, then SIGKILL (with a warning) if it is still there after `graceMs`.
 * @param {Tracked} proc
 * @param {number} graceMs
 */
async function stop(proc, graceMs) {
  if (proc.exitCode !== null || proc.pid === undefined) return;
  if (await signalAndWait(proc.pid, 'SIGTERM', proc.exited, graceMs)) return;
  warnings.push(`${proc.name} (pid ${proc.pid}) did not exit within ${graceMs} ms of SIGTERM and was killed`);
  try {
    process.kill(proc.pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  await proc.exited;
}

export async function stopAll() {
  await Promise.all([...live].map((p) => stop(p, 1500)));
}

/** @type {Set<() => unknown>} */
const cleanups = new Set();

/**
 * Registers an undo step (a network namespace to delete) for an interrupted run; returns its
 * unregister.
 * @param {() => unknown} fn
 * @returns {() => boolean}
 */
export function onInterrupt(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Ctrl-C or SIGTERM: stop every child, then run the undo steps. */
export async function interrupted() {
  await stopAll();
  for (const fn of cleanups) await Promise.resolve(fn()).catch(() => undefined);
  cleanups.clear();
}

/**
 * The tail of a child's log, for error messages.
 * @param {{ logFile: string }} proc
 * @param {number} [lines]
 */
export function logTail(proc, lines = 15) {
  try {
    return fs.readFileSync(proc.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Waits (bounded) until `probe` says a just-started child serves; fails with its log's tail
 * as soon as it exits, and stops it when it never comes up.
 * @param {BenchProc} proc
 * @param {() => Promise<boolean> | boolean} probe
 * @param {string} what
 * @param {number} [timeoutMs]
 * @param {string} [code] the BenchError code when it does not come up
 * @returns {Promise<BenchProc>}
 */
export async function waitStarted(proc, probe, what, timeoutMs = 15_000, code = 'MLB_ERR_BENCH_START') {
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null)
          throw new BenchError(code, `${what} exited (${proc.exitCode}): ${logTail(proc)}`);
        return probe();
      },
      timeoutMs,
      what,
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/**
 * @typedef {object} RunOptions
 * @property {number | null} [cpu] pinned to this CPU (taskset)
 * @property {string | null} [netns] run in this network namespace
 * @property {number} [timeoutMs]
 * @property {Record<string, string>} [env] added to the bench's environment
 * @property {string} [input] written to its stdin
 */

/**
 * Runs a command to completion (a load generator, a setup step) and collects its output.
 * Rejects when it cannot start or runs past `timeoutMs`; a non-zero exit is returned, not thrown.
 * @param {string} cmd
 * @param {readonly string[]} [args]
 * @param {RunOptions} [opts]
 * @returns {Promise<{ code: number | null, stdout: string, stderr: string }>}
 */
export async function run(
  cmd,
  args = [],
  { cpu = null, netns = null, timeoutMs = 120_000, env = {}, input } = {},
) {
  installCleanup();
  const argv = wrap(cmd, args, { cpu, netns });
  const { child, result } = runCommand(argv, { input, timeoutMs, env: { ...process.env, ...env } });
  /** @type {Tracked} */
  const tracked = { name: argv[0] ?? cmd, pid: child.pid, exitCode: null, exited: result };
  if (child.pid !== undefined) live.add(tracked);
  const r = await result;
  live.delete(tracked);
  if (r.error) throw r.error;
  if (r.timedOut)
    throw new BenchError('MLB_ERR_BENCH_TOOL_TIMEOUT', `${argv.join(' ')} ran past ${timeoutMs} ms`);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/**
 * CPU time a process has used, user plus kernel, all threads (/proc/<pid>/stat's utime and
 * stime), in microseconds; null once it is gone. The kernel counts it in USER_HZ ticks,
 * 100 a second on every Linux the bench runs on: 10 ms resolution, so it is read over
 * whole measurements of seconds.
 * @param {number | undefined} pid
 * @returns {number | null}
 */
export function cpuMicros(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 1e4;
  } catch {
    return null;
  }
}

/**
 * Resident set size of a process in KiB (VmRSS), or null once it is gone.
 * @param {number | undefined} pid
 * @returns {number | null}
 */
export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
