#!/usr/bin/env node
// The bare data path: mirrorlb's raw path (dist/proxy/raw.js) with nothing around it, no
// health checks, no metrics, no config, no session table. The bench measures the full
// daemon against it: what the daemon adds per connection (issue 14: within 5%).
//
//   node bench/lib/bare-proxy.mjs LISTEN_PORT BACKEND_HOST:PORT
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'proxy');
const load = (f) => import(pathToFileURL(path.join(dist, f)).href);
const { rawAvailable, rawDial, rawLink } = await load('raw.js');
const { createProxyServer, socketForHandle } = await load('sockets.js');

const [listenPort, backend] = [Number(process.argv[2]), process.argv[3]];
const [host, port] = [backend.split(':')[0], Number(backend.split(':')[1])];
if (!rawAvailable()) throw new Error('the raw path is not available on this Node');

const hooks = { onClose() {} };
const dialer = {
  dialed(a, status) {
    if (status !== 0) {
      a.backend.close();
      a.client.close();
      return;
    }
    rawLink(a.client, a.backend, hooks, socketForHandle);
  },
};
const server = createProxyServer((socket) => socket.destroy(), {
  takeHandle(h) {
    if (typeof rawDial(h, host, 4, port, 'bare', 0, Infinity, dialer) === 'string') h.close();
    return true;
  },
});
server.on('error', (err) => console.error(err.message));
server.listen({ host: '127.0.0.1', port: listenPort, backlog: 4096 }, () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
