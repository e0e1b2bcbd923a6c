// Held clients that leave, on the plain data path (MIRRORLB_DATAPATH=plain is read once when
// the data path loads, so it is set before the daemon's modules are imported).
import t from 'tap';

process.env.MIRRORLB_DATAPATH = 'plain';
const { heldClientsThatLeave } = await import('./helpers/hold-leave.js');

t.test('held clients that leave are counted apart from those released (plain path)', (t) =>
  heldClientsThatLeave(t, false),
);
