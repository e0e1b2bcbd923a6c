import net from 'node:net';
import t from 'tap';
import { Resolver } from '../src/proxy/resolver.js';

// The backend addresses the proxy dials (resolver.ts): IP literals as they are, names once
// looked up. dial() is what the raw accept path asks on every client.

t.test('IP literals dial as configured, with their family', async (t) => {
  const r = new Resolver();
  const v4 = { host: '127.0.0.1', port: 1972 };
  const v6 = { host: '::1', port: 1972 };
  t.same(r.dial(v4), { host: '127.0.0.1', port: 1972, family: 4 });
  t.same(r.dial(v6), { host: '::1', port: 1972, family: 6 });
  t.equal(r.dial(v4), r.dial(v4), 'the same answer object until something changes');
});

t.test('a name dials as itself (family 0) until a lookup gives its address', async (t) => {
  const r = new Resolver();
  const addr = { host: 'localhost', port: 51773 };
  const before = r.dial(addr);
  t.same(
    before,
    { host: 'localhost', port: 51773, family: 0 },
    'not resolved yet: the accept path leaves it to the socket path',
  );
  await r.refresh(addr);
  const after = r.dial(addr);
  t.not(after.family, 0, 'resolved');
  t.equal(after.family, net.isIP(after.host), 'the family is that of the address it gives');
  t.equal(after.port, 51773);
  t.equal(r.state(addr).ip, after.host, '/status shows the same address');
});

t.test('a name that stops resolving is dialled by name again', async (t) => {
  const r = new Resolver();
  const addr = { host: 'no-such-member.invalid', port: 1972 };
  await r.refresh(addr);
  t.same(r.dial(addr), { host: 'no-such-member.invalid', port: 1972, family: 0 });
  t.ok(r.state(addr).error, 'the lookup error is kept for /status');
});
