/**
 * The hostile config corpus (test/fixtures/config/hostile/, whose messages
 * test/config-hostile.test.ts checks in-process) through the real command line, as an
 * operator meets it: each file in its own `mirrorlb` process with a bare environment must
 * exit 1 with nothing but `FILE:LINE:COL: message` lines on stderr: no stack trace, nothing
 * on stdout, no daemon started, for `mirrorlb check --config F` and `mirrorlb --config F`. The
 * corpus is split over test/hostile-config-1.test.ts and test/hostile-config-2.test.ts.
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { newResults, record } from './results.js';
import { warnIfStale } from './suite.js';

const BIN = fileURLToPath(new URL('../../../bin/mirrorlb.js', import.meta.url));
const DIR = fileURLToPath(new URL('../../fixtures/config/hostile/', import.meta.url));
/** Generous: a refused file costs a process start plus well under a second of parsing. */
const PER_RUN_MS = 20_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runCli(args: string[]): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    // A bare environment: ${VAR} references in the corpus must not pick up this machine's.
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), PER_RUN_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Runs `fn` over `items`, `n` at a time, keeping the order of results. */
async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The committed corpus plus files too big to commit, written under `tmp` for each run. */
export function corpus(tmp: string): string[] {
  const generated: Record<string, string | Buffer> = {
    'huge.yml': `mirrors:\n${'  - name: x\n'.repeat(200_000)}`,
    'huge-zeros.yml': Buffer.alloc(3 * 1024 * 1024),
    'too-many-lines.yml': `mirrors:\n${'- 1\n'.repeat(200_000)}`,
    'long-line.yml': `mirrors:\n  - name: ${'a'.repeat(1_000_000)}\n`,
  };
  for (const [name, content] of Object.entries(generated)) writeFileSync(join(tmp, name), content);
  return [
    ...readdirSync(DIR)
      .filter((f) => f.endsWith('.yml'))
      .map((f) => join(DIR, f)),
    ...Object.keys(generated).map((f) => join(tmp, f)),
  ];
}

const COMMANDS = [
  { id: 'check', command: 'mirrorlb check --config F', args: (f: string) => ['check', '--config', f] },
  { id: 'run', command: 'mirrorlb --config F', args: (f: string) => ['--config', f] },
] as const;

/**
 * Runs both commands on every other file of the corpus (half `part` of two, so the corpus
 * is split over two test files that tap runs side by side) and asserts each refusal's shape.
 */
export async function refusesEveryFile(t: Test, part: 1 | 2): Promise<void> {
  warnIfStale(t);
  const all = corpus(t.testdir({}));
  t.ok(all.length >= 44, `${all.length} files in the corpus`);
  const files = all.filter((_, i) => i % 2 === part - 1);
  const results = newResults(t, `hostile-config-${part}`, 'hostile', {});
  for (const { id, command, args } of COMMANDS) {
    const started = Date.now();
    // Two at a time: tap runs two test files at once on this 2-core machine.
    const runs = await pool(files, 2, async (file) => ({ file, r: await runCli(args(file)) }));
    let slowest = 0;
    const bad: string[] = [];
    for (const { file, r } of runs) {
      const shape = new RegExp(`^${escapeRe(file)}:\\d+:\\d+: \\S`);
      slowest = Math.max(slowest, r.ms);
      const lines = r.stderr.replace(/\n$/, '').split('\n');
      const problems: string[] = [];
      if (r.code !== 1) problems.push(`exit ${r.code}`);
      if (r.stdout !== '') problems.push(`stdout: ${r.stdout.slice(0, 200)}`);
      if (!(r.stderr.length > 0 && lines.every((l) => shape.test(l)))) {
        problems.push(`stderr not FILE:LINE:COL lines: ${r.stderr.slice(0, 300)}`);
      }
      if (/^\s+at /m.test(r.stderr) || /\b(TypeError|RangeError|ReferenceError)\b/.test(r.stderr)) {
        problems.push('a stack trace or a raw JS error');
      }
      if (problems.length > 0) bad.push(`${file}: ${problems.join('; ')}`);
    }
    t.same(bad, [], `${command}: ${files.length} files, each exits 1 with only FILE:LINE:COL: message lines`);
    record(results, {
      id: `config-${id}-${part}`,
      fault: `hostile config files through \`${command}\` (half ${part} of the corpus)`,
      description: `${files.length} of the ${all.length} broken or hostile files (wrong types, YAML bombs, 3 MB files, unknown and duplicate keys, ports out of range, unset env variables, ...), each in its own \`${command}\` process with a bare environment`,
      expected: 'exit 1 with `FILE:LINE:COL: message` lines only; no stack trace; nothing started',
      passed: bad.length === 0,
      figures: { files: files.length, slowestRunMs: slowest, totalMs: Date.now() - started },
    });
  }
}
