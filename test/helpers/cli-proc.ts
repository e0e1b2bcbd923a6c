import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

type Test = { teardown(fn: () => unknown): void };

/** The package's CLI entry, run as users run it (it runs dist/). */
export const BIN = fileURLToPath(new URL('../../bin/mirrorlb.js', import.meta.url));

/** A `mirrorlb` child process: its JSON log records as they arrive, its stderr, its exit. */
export interface CliProc {
  readonly child: ChildProcess;
  /** stdout lines parsed as JSON (a line that is not JSON is kept as `{ msg: line }`). */
  readonly lines: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

/** Starts `node bin/mirrorlb.js ...args`; killed in teardown if it is still running. */
export function runCli(t: Test, args: string[]): CliProc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, lines, stderr: () => err, exited };
}
