/** The hostile config corpus through `mirrorlb --config F`, one process per file (see test/faults/lib/config-cli.ts). */
import t from 'tap';
import { refusesEveryFile } from './faults/lib/config-cli.js';

t.test('mirrorlb --config refuses every hostile config cleanly, starting nothing', (t) =>
  refusesEveryFile(t, 'config-run', 'mirrorlb --config F', (f) => ['--config', f]),
);
