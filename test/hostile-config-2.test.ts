/**
 * Half 2 of the hostile config corpus through the real CLI (`mirrorlb check --config F`
 * and `mirrorlb --config F`, one process per file; see test/faults/lib/config-cli.ts).
 */
import t from 'tap';
import { refusesEveryFile } from './faults/lib/config-cli.js';

t.test('mirrorlb check and mirrorlb --config refuse every hostile config cleanly (half 2)', (t) =>
  refusesEveryFile(t, 2),
);
