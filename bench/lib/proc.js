// Child processes of the bench: every one is started through here so it can be pinned to a
// CPU, put in the members' network namespace, logged to a file, and stopped by its pid when
// the bench ends (also on Ctrl-C or an error). Nothing is ever killed by name.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BenchError, sleep } from './util.js';

const live = new Set();
/** Things worth telling the reader that are not figures (a child that ignored SIGTERM, ...). */
export const warnings = [];
let cleanupInstalled = false;

/** Whether `cmd` is on PATH. */
export function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** argv prefix that runs a command in a namespace and on a CPU (each wrapper execs, so the pid stays the command's). */
function wrap(cmd, args, { cpu, netns }) {
  let argv = [cmd, ...args];
  if (cpu !== null && cpu !== undefined) argv = ['taskset', '-c', String(cpu), ...argv];
  if (netns) argv = ['ip', 'netns', 'exec', netns, ...argv];
  return argv;
}

function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * Starts a long-running child. Its stdout and stderr go to `<logDir>/<name>.log` so a failed
 * run can be read afterwards; `stop()` sends SIGTERM, then SIGKILL after `graceMs`.
 */
export function start({ name, cmd, args = [], cpu = null, netns = null, env = {}, logDir, cwd }) {
  installCleanup();
  const logFile = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logFile, 'a');
  const argv = wrap(cmd, args, { cpu, netns });
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
    cwd,
  });
  fs.closeSync(fd);
  const proc = {
    name,
    pid: child.pid,
    child,
    logFile,
    exitCode: null,
    exited: null,
    stop: (graceMs = 2000) => stop(proc, graceMs),
  };
  proc.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(proc);
      proc.exitCode = code ?? signal;
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      live.delete(proc);
      proc.exitCode = err.code;
      resolve({ code: null, signal: null, error: err });
    });
  });
  if (child.pid !== undefined) live.add(proc);
  return proc;
}

async function stop(proc, graceMs) {
  if (proc.exitCode !== null) return;
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    warnings.push(
      `${proc.name} (pid ${proc.pid}) did not exit within ${graceMs} ms of SIGTERM and was killed`,
    );
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    await proc.exited;
  }
}

export async function stopAll() {
  await Promise.all([...live].map((p) => stop(p, 1500)));
}

const cleanups = new Set();

/** Registers an undo step (a network namespace to delete) for an interrupted run; returns its unregister. */
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

/** The tail of a child's log, for error messages. */
export function logTail(proc, lines = 15) {
  try {
    return fs.readFileSync(proc.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Runs a command to completion (a load generator, a setup step) and collects its output.
 * Rejects when it cannot start or runs past `timeoutMs`; a non-zero exit is returned, not thrown.
 */
export function run(cmd, args = [], { cpu = null, netns = null, timeoutMs = 120_000, env = {}, input } = {}) {
  installCleanup();
  const argv = wrap(cmd, args, { cpu, netns });
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const proc = { name: argv[0], pid: child.pid, exitCode: null, exited: null };
    proc.exited = new Promise((r) => child.on('close', (code) => r((proc.exitCode = code ?? 'signal'))));
    if (child.pid !== undefined) live.add(proc);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BenchError('MLB_ERR_BENCH_TOOL_TIMEOUT', `${argv.join(' ')} ran past ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/** Resident set size of a process in KiB (VmRSS), or null once it is gone. */
/**
 * CPU time a process has used, user plus kernel, all threads (/proc/<pid>/stat's utime and
 * stime), in microseconds; null once it is gone. The kernel counts it in USER_HZ ticks,
 * 100 a second on every Linux the bench runs on: 10 ms resolution, so it is read over
 * whole measurements of seconds.
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

export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
