// Held clients that leave, on the default (fast) data path; see test/helpers/hold-leave.ts.
import t from 'tap';
import { heldClientsThatLeave } from './helpers/hold-leave.js';

t.test('held clients that leave are counted apart from those released (fast path)', (t) =>
  heldClientsThatLeave(t, process.env.MIRRORLB_DATAPATH !== 'plain'),
);
