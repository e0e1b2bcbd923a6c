import { fastPathDefault } from './fastpath.js';
import { rawAvailable } from './raw.js';

/** The data path's three names: `raw` (raw.ts), `fast` (fastpath.ts + link.ts), `plain` (Node's streams). */
export type DataPath = 'raw' | 'fast' | 'plain';

/**
 * Which data path clients take, and why not a faster one: the daemon's `data path` log
 * record at start. `fastAccept`: every listener's accept hook is in place (accept-hook.ts).
 */
export function describeDataPath(fastAccept: boolean): {
  data_path: DataPath;
  accept: 'fast' | 'plain';
  connect: 'fast' | 'plain';
  reason: string | null;
} {
  const connect = fastPathDefault();
  const fast = connect && fastAccept;
  // Raw handles need the fast accept hook (the handle arrives there) and the bindings.
  const raw = fast && rawAvailable();
  return {
    data_path: raw ? 'raw' : fast ? 'fast' : 'plain',
    accept: fastAccept ? 'fast' : 'plain',
    connect: connect ? 'fast' : 'plain',
    reason: raw
      ? null
      : !connect
        ? 'MIRRORLB_DATAPATH=plain'
        : !fastAccept
          ? 'server internals of this Node.js not as expected'
          : process.env.MIRRORLB_DATAPATH === 'stream'
            ? 'MIRRORLB_DATAPATH=stream'
            : "this Node.js's TCP bindings not as expected",
  };
}
