// A TCP relay that runs inside a network namespace and listens on a Unix socket path
// (path sockets are not tied to a network namespace), so the test process, which stays in
// the host's namespace, can open TCP connections from inside the network: it writes
// "HOST PORT\n", gets "OK\n" (or "ERR CODE\n") and then talks to HOST:PORT.
//   node agent.mjs SOCKET_PATH
import net from 'node:net';
import { rmSync } from 'node:fs';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: node agent.mjs SOCKET_PATH\n');
  process.exit(2);
}
rmSync(path, { force: true });

function relay(up) {
  up.on('error', () => up.destroy());
  let head = Buffer.alloc(0);
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 512) up.destroy();
      return;
    }
    up.off('data', onData);
    up.pause();
    const [host, port] = head.subarray(0, nl).toString().trim().split(' ');
    const early = head.subarray(nl + 1);
    const down = net.connect({ host, port: Number(port), allowHalfOpen: true });
    const onFail = (err) => {
      up.end(`ERR ${err.code || 'ERROR'}\n`);
    };
    down.once('error', onFail);
    down.once('connect', () => {
      down.off('error', onFail);
      down.setNoDelay(true);
      up.write('OK\n');
      if (early.length > 0) down.write(early);
      // Half-close passes through (pipe ends the other side on 'end'); an error or a close
      // of either side takes the other with it.
      up.pipe(down);
      down.pipe(up);
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
      up.resume();
    });
  };
  up.on('data', onData);
}

const server = net.createServer({ allowHalfOpen: true }, relay);
server.listen(path, () => {
  process.stdout.write(`${JSON.stringify({ msg: 'agent listening', path })}\n`);
});
const stop = () => {
  server.close();
  rmSync(path, { force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
