#!/usr/bin/env node
// The bare data path: mirrorlb's raw path (dist/proxy/raw.js) with nothing around it, no
// health checks, no metrics, no config, no session table. The bench measures the full
// daemon against it: what the daemon adds per connection (issue 14: within 5%).
// bench/datapath-quick.mjs's `raw` target is the same function (serveBare).
//
//   node bench/lib/bare-proxy.mjs LISTEN_PORT BACKEND_HOST:PORT
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');

/**
 * Listens on host:listenPort and links every accepted handle, raw, to backend host:port.
 * `dist` is the build to take raw.js and sockets.js from; onOpen/onClose count sessions.
 * Resolves to the listening server.
 */
export async function serveBare({
  dist = DIST,
  host = '127.0.0.1',
  listenPort,
  backendHost,
  backendPort,
  onOpen = () => {},
  onClose = () => {},
}) {
  const load = (f) => import(pathToFileURL(path.join(dist, 'proxy', f)).href);
  const { rawAvailable, rawDial, rawLink } = await load('raw.js');
  const { createProxyServer, socketForHandle } = await load('sockets.js');
  if (!rawAvailable()) throw new Error('the raw path is not available on this Node');
  const hooks = { onClose };
  const dialer = {
    dialed(a, status) {
      if (status !== 0) {
        a.backend.close();
        a.client.close();
        return;
      }
      onOpen();
      rawLink(a.client, a.backend, hooks, socketForHandle);
    },
  };
  const server = createProxyServer((socket) => socket.destroy(), {
    takeHandle(h) {
      if (typeof rawDial(h, backendHost, 4, backendPort, 'bare', Infinity, dialer) === 'string') h.close();
      return true;
    },
  });
  server.on('error', (err) => console.error(err.message));
  await new Promise((resolve) => server.listen({ host, port: listenPort, backlog: 4096 }, resolve));
  return server;
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const [listenPort, backend] = [Number(process.argv[2]), process.argv[3]];
  const [backendHost, backendPort] = [backend.split(':')[0], Number(backend.split(':')[1])];
  await serveBare({ listenPort, backendHost, backendPort });
  console.log('listening');
  process.on('SIGTERM', () => process.exit(0));
}
