// The test helpers' own promises: a bounded wait ends at its bound, and reading one socket
// again and again leaves it with one error listener, not one per read.
import net from 'node:net';
import t from 'tap';
import { waitFor } from './helpers/datapath.js';
import { withTcpServer } from './helpers/http.js';
import { connect, readUpTo } from './helpers/sim.js';

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

t.test('waitFor rejects at its timeout and polls no more', async (t) => {
  let calls = 0;
  const before = timers();
  await t.rejects(
    waitFor(() => (calls++, false), 50, 'a condition that never holds'),
    { message: 'timed out after 50 ms waiting for a condition that never holds' },
    'a clear message',
  );
  t.ok(calls >= 2, `polled ${calls} times before the timeout`);
  t.equal(timers(), before, 'no poll timer left behind');
});

t.test('waitFor resolves as soon as the condition holds, and says what threw', async (t) => {
  let calls = 0;
  await waitFor(() => ++calls === 3, 5000, 'three polls');
  t.equal(calls, 3);
  await t.rejects(
    waitFor(
      () => {
        throw new Error('broken condition');
      },
      5000,
      'x',
    ),
    { message: 'broken condition' },
  );
});

t.test('a socket read many times by readUpTo keeps one error listener', async (t) => {
  const srv = await withTcpServer(t, (s: net.Socket) => s.pipe(s));
  const s = await connect(srv.port);
  t.teardown(() => s.destroy());
  for (let i = 0; i < 15; i++) {
    s.write('x');
    t.equal((await readUpTo(s, 1, 5000)).data.toString(), 'x');
  }
  t.equal(s.listenerCount('error'), 1, 'one listener after 15 reads');
  t.equal(s.listenerCount('data'), 0, 'no data listener left either');
});
