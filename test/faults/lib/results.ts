import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { DEFAULTS } from '../../../src/config/keys.js';

/**
 * Where each suite of the fault and hostile tests leaves its results, one JSON file per
 * suite, rewritten after every case; scripts/fault-matrix.mjs merges the newest of them
 * into test/faults/results/last-run.json and renders docs/reliability.md. Kept out of the
 * tree by default so a test run never dirties it; MIRRORLB_FAULT_RESULTS moves it.
 */
export function resultsDir(): string {
  return process.env.MIRRORLB_FAULT_RESULTS ?? join(os.tmpdir(), 'mirrorlb-fault-results');
}

export interface SuiteResults {
  readonly suite: string;
  /** False until the test file finished: a file another run is still writing is not merged. */
  complete: boolean;
  readonly kind: 'fault' | 'hostile';
  readonly startedAt: string;
  finishedAt: string;
  readonly machine: { cpus: number; kernel: string; node: string; loadavg: number[] };
  readonly commit: string | null;
  /** The config defaults of the build under test (the fault cases run with them). */
  readonly defaults: { readonly health: unknown; readonly proxy: unknown };
  readonly settings: Record<string, unknown>;
  readonly cases: Array<Record<string, unknown>>;
}

function commit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 5000 }).trim();
  } catch {
    return null;
  }
}

/** New results of one suite; marked complete (and written) in the teardown of `t`, the test file's root. */
export function newResults(
  t: { teardown(fn: () => unknown): void },
  suite: string,
  kind: SuiteResults['kind'],
  settings: Record<string, unknown>,
): SuiteResults {
  const r: SuiteResults = {
    suite,
    complete: false,
    kind,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version, loadavg: os.loadavg() },
    commit: commit(),
    defaults: { health: DEFAULTS.health, proxy: DEFAULTS.proxy },
    settings,
    cases: [],
  };
  t.teardown(() => {
    if (r.cases.length === 0) return;
    r.complete = true;
    write(r);
  });
  return r;
}

/** Adds (or replaces, by id) one case and rewrites the suite's file atomically. */
export function record(r: SuiteResults, c: Record<string, unknown> & { id: string }): void {
  const i = r.cases.findIndex((x) => x.id === c.id);
  if (i >= 0) r.cases[i] = c;
  else r.cases.push(c);
  write(r);
}

function write(r: SuiteResults): void {
  r.finishedAt = new Date().toISOString();
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${r.suite}.json`);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(r, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}
