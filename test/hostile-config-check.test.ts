/** The hostile config corpus through `mirrorlb check --config F`, one process per file (see test/faults/lib/config-cli.ts). */
import t from 'tap';
import { refusesEveryFile } from './faults/lib/config-cli.js';

t.test('mirrorlb check refuses every hostile config cleanly', (t) =>
  refusesEveryFile(t, 'config-check', 'mirrorlb check --config F', (f) => ['check', '--config', f]),
);
