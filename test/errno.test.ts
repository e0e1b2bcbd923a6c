import os from 'node:os';
import t from 'tap';
import { errnoName } from '../src/errno.js';

t.test('errno names of libuv statuses', async (t) => {
  const { ECONNREFUSED, ECONNRESET, EMFILE } = os.constants.errno;
  // [status, fallback, name]
  const table: [number, string | undefined, string][] = [
    [-ECONNREFUSED, undefined, 'ECONNREFUSED'],
    [-ECONNRESET, 'MLB_ERR_CONNECT', 'ECONNRESET'],
    [-EMFILE, undefined, 'EMFILE'],
    [0, undefined, 'E0'],
    [5, 'MLB_ERR_CONNECT', 'MLB_ERR_CONNECT'],
    [-1.5, 'MLB_ERR_CONNECT', 'MLB_ERR_CONNECT'],
  ];
  for (const [status, fallback, want] of table) t.equal(errnoName(status, fallback), want, `${status}`);
});
