// Accepted sockets of the fast path get TCP_NODELAY from their listener (one setsockopt per
// listen, none per connection). Read back from the kernel: a python3 helper takes a copy of
// each socket's descriptor from this process (pidfd_getfd, Linux 5.6+, needs ptrace rights:
// root) and asks getsockopt. Skipped with the reason where that is not possible.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { createProxyServer, connectBackend } from '../src/proxy/sockets.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

const PY = `
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(int(sys.argv[1]))
for fd in sys.argv[2:]:
    dup = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
    if dup < 0:
        sys.exit('pidfd_getfd: errno %d' % ctypes.get_errno())
    s = socket.socket(fileno=dup)
    print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    s.detach()
    os.close(dup)
`;

function nodelay(fds: number[]): number[] | string {
  try {
    const out = execFileSync('python3', ['-c', PY, String(process.pid), ...fds.map(String)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return out.trim().split('\n').map(Number);
  } catch (err) {
    return String((err as { stderr?: string }).stderr || (err as Error).message).trim();
  }
}

function fdOf(s: net.Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

const probe = process.platform === 'linux' ? nodelay([]) : 'not Linux';
const why = typeof probe === 'string' ? probe : null;
if (why && STRICT) t.fail(`cannot read socket options of this process (${why}) and MIRRORLB_TEST_STRICT=1`);

t.test('fast path: accepted and backend sockets have TCP_NODELAY', { skip: why ?? false }, async (t) => {
  const accepted: net.Socket[] = [];
  const server = createProxyServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  const clients: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    clients.push(c);
  }
  while (accepted.length < 3) await new Promise((r) => setImmediate(r));
  const backend = await connectBackend({ host: '127.0.0.1', port }, 2000);
  while (accepted.length < 4) await new Promise((r) => setImmediate(r));
  const values = nodelay([...accepted.map(fdOf), fdOf(backend)]);
  t.same(values, [1, 1, 1, 1, 1], 'TCP_NODELAY on every accepted socket and on the backend socket');
  for (const s of [...accepted, ...clients, backend]) s.destroy();
});

t.test('plain path: accepted sockets have TCP_NODELAY too', { skip: why ?? false }, async (t) => {
  const accepted: net.Socket[] = [];
  const server = createProxyServer((s) => accepted.push(s), { fastPath: false });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  c.on('error', () => undefined);
  while (accepted.length < 1) await new Promise((r) => setImmediate(r));
  t.same(nodelay([fdOf(accepted[0]!)]), [1]);
  accepted[0]!.destroy();
  c.destroy();
});
