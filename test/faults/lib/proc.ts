import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { childEnv, exitOf, signalAndWait } from '../../../bench/lib/proc.js';

/**
 * A child process of the fault suite (a balancer, a simulated member, a load client, an
 * agent), usually started inside a namespace. Its stdout is read as JSON lines (pino logs,
 * load records) with the time each arrived; stderr is kept as text.
 */
export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Parsed stdout lines, in order (a line that is not JSON becomes `{ msg: line }`). */
  readonly lines: ReadonlyArray<Record<string, unknown>>;
  stderr(): string;
  /** Settles when the process has exited, with its code (null: killed by a signal) and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** Resolves with the first line (already read or still to come) that `pred` accepts; rejects after `timeoutMs`. */
  waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>>;
  /** Writes a line to its stdin. */
  send(line: string): void;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL and wait (bounded) for the exit. Idempotent. */
  kill(): Promise<void>;
}

export function startProc(
  name: string,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Proc {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: childEnv(opts.env),
    cwd: opts.cwd,
  });
  const lines: Array<Record<string, unknown>> = [];
  const events = new EventEmitter();
  events.setMaxListeners(100);
  let err = '';
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let rec: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(text);
        rec = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : { msg: text };
      } catch {
        rec = { msg: text };
      }
      lines.push(rec);
      events.emit('line', rec);
    }
  });
  child.stderr!.on('data', (c: Buffer) => {
    // Bounded: a process that floods stderr must not eat the test's memory.
    if (err.length < 1_000_000) err += c.toString();
  });
  child.stdin!.on('error', () => undefined);
  let exitedFlag = false;
  const exited = exitOf(child).then(({ code, signal, error }) => {
    exitedFlag = true;
    if (!error) return { code, signal };
    err += `spawn error: ${error.message}\n`;
    return { code: 127, signal: null };
  });
  let killed: Promise<void> | null = null;
  return {
    name,
    pid: child.pid ?? -1,
    child,
    lines,
    stderr: () => err,
    exited,
    hasExited: () => exitedFlag,
    waitFor: (pred, timeoutMs, what) =>
      new Promise((resolve, reject) => {
        const found = lines.find(pred);
        if (found) return resolve(found);
        const onLine = (l: Record<string, unknown>): void => {
          if (!pred(l)) return;
          done();
          resolve(l);
        };
        const onExit = (): void => {
          done();
          reject(new Error(`${name} exited before ${what}: ${err.slice(-2000)}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms; stderr: ${err.slice(-2000)}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          events.off('line', onLine);
          child.off('exit', onExit);
        };
        events.on('line', onLine);
        child.once('exit', onExit);
      }),
    send: (line) => {
      if (!exitedFlag) child.stdin!.write(`${line}\n`);
    },
    signal: (sig) => {
      if (!exitedFlag && child.pid) process.kill(child.pid, sig);
    },
    kill: () =>
      (killed ??= (async () => {
        await signalAndWait(exitedFlag ? undefined : child.pid, 'SIGKILL', exited, 5000);
      })()),
  };
}
