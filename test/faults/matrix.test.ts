/**
 * docs/reliability.md is generated, never typed: it must be exactly what
 * scripts/fault-matrix.mjs renders from the committed test/faults/results/last-run.json,
 * and that run must hold every suite with every case passed and nothing lost.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SCRIPT = fileURLToPath(new URL('../../scripts/fault-matrix.mjs', import.meta.url));
const LAST_RUN = fileURLToPath(new URL('./results/last-run.json', import.meta.url));

interface Run {
  suites: Array<{ suite: string; cases: Array<{ id: string; passed: boolean; violationCount?: number }> }>;
}

t.test('docs/reliability.md is what the committed last run renders to', async (t) => {
  const r = spawnSync(process.execPath, [SCRIPT, '--check'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, 'fault-matrix --check', { output: `${r.stdout}${r.stderr}` });
});

t.test('the committed last run: every suite, every case passed, nothing lost', async (t) => {
  const run = JSON.parse(readFileSync(LAST_RUN, 'utf8')) as Run;
  t.same(
    run.suites.map((s) => s.suite),
    [
      'network',
      'process',
      'status-page',
      'status-answer',
      'roles',
      'operations',
      'stack',
      'hostile-config-1',
      'hostile-config-2',
      'hostile-admin',
      'hostile-clients',
    ],
  );
  const cases = run.suites.flatMap((s) => s.cases.map((c) => ({ ...c, suite: s.suite })));
  t.same(
    cases.filter((c) => !c.passed || (c.violationCount ?? 0) > 0).map((c) => `${c.suite}/${c.id}`),
    [],
  );
  t.same(
    cases.map((c) => c.id),
    [
      'blackhole',
      'link-down',
      'sigkill',
      'sigstop',
      'status-dead',
      'status-slow',
      'status-garbage',
      'status-huge',
      'status-redirect',
      'both-primary',
      'flapping',
      'reload',
      'sigterm',
      'sigterm-connecting',
      'stack-failover',
      'config-check-1',
      'config-run-1',
      'config-check-2',
      'config-run-2',
      'admin-hostile',
      'vanishing-clients',
      'fd-exhaustion',
      'held-clients-vanish',
    ],
    'every case of the issue is in the matrix',
  );
});
