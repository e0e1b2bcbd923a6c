/**
 * A stand-in Web Gateway: a small real HTTP server in front of simulated members. Path
 * `/<member>/csp/...` is forwarded to that member's web port (as a Web Gateway path bound to
 * one member is), unless the gateway is set to fail the way real gateways do: `500` (cannot
 * reach IRIS), `503html` (an HTML "Service Unavailable" page of its own), `hang` (accepts,
 * never answers).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { withBalancer } from './balancer.js';
import { withSim } from './sim.js';

export type GatewayMode = 'forward' | '500' | '503html' | 'hang';

export interface Gateway {
  mode: GatewayMode;
  readonly port: number;
  /** The check URL of `member` through this gateway. */
  url(member: string): string;
  /** Requests answered (any way) so far. */
  readonly answered: number;
}

type Test = { teardown(fn: () => unknown): void };

export async function withGateway(t: Test, webPorts: Record<string, number>): Promise<Gateway> {
  let answered = 0;
  const hung = new Set<http.ServerResponse>();
  const gw: { mode: GatewayMode } = { mode: 'forward' };
  const server = http.createServer((req, res) => {
    const [, member, ...rest] = (req.url ?? '/').split('/');
    const port = webPorts[member ?? ''];
    switch (gw.mode) {
      case 'hang':
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      case '500':
        answered++;
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<html><body><h1>CSP Gateway Error</h1>Server availability error</body></html>');
        return;
      case '503html':
        answered++;
        res.writeHead(503, { 'content-type': 'text/html' });
        res.end(
          '<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>',
        );
        return;
      case 'forward':
        break;
      default:
        return void String(gw.mode satisfies never);
    }
    if (port === undefined) {
      answered++;
      res.writeHead(404).end();
      return;
    }
    const up = http.get({ host: '127.0.0.1', port, path: `/${rest.join('/')}`, agent: false }, (r) => {
      answered++;
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      answered++;
      res.writeHead(502).end('bad gateway');
    });
  });
  server.keepAliveTimeout = 3000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const r of hung) r.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return {
    get mode() {
      return gw.mode;
    },
    set mode(m: GatewayMode) {
      gw.mode = m;
    },
    port,
    url: (member) => `http://127.0.0.1:${port}/${member}/csp/mirror_status.cxw`,
    get answered() {
      return answered;
    },
  };
}

/**
 * One mirror `ap1` of two simulated members (ap1a primary, ap1b backup), each checked through
 * the same two gateways, as the seed checks IRIS: the balancer's config names `kind` only when
 * given (null: the contract's smallest file, the kind left to inference).
 */
export async function withGatewayMirror(t: Test, kind: string | null) {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const ports = { ap1a: a.webPort, ap1b: b.webPort };
  const gw1 = await withGateway(t, ports);
  const gw2 = await withGateway(t, ports);
  const member = (name: string, ss: number): string[] => [
    `      - name: ${name}`,
    `        address: 127.0.0.1:${ss}`,
    '        check:',
    `          - ${gw1.url(name)}`,
    `          - ${gw2.url(name)}`,
  ];
  const yaml = [
    'mirrors:',
    '  - name: ap1',
    ...(kind === null ? [] : [`    kind: ${kind}`]),
    '    listen: 127.0.0.1:0',
    '    members:',
    ...member('ap1a', a.superserverPort),
    ...member('ap1b', b.superserverPort),
    'admin:',
    '  listen: 127.0.0.1:0',
  ].join('\n');
  const lb = await withBalancer(t, yaml);
  return { a, b, gw1, gw2, lb, port: lb.port('ap1') };
}
