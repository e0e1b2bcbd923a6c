import { spawn } from 'node:child_process';
import type http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { Prober, type ProbeOptions } from '../src/health/probe.js';
import { probeErrorCode } from '../src/health/probe-error.js';
import { checkSuperserver } from '../src/health/superserver.js';
import type { ProbeResult } from '../src/health/types.js';
import { closedPort, withHttpServer, withTcpServer, within } from './helpers/http.js';

const OPTS: ProbeOptions = {
  timeoutMs: 2000,
  expectStatus: 200,
  expectBody: 'SUCCESS',
  maxBodyBytes: 4096,
  checkSuperserver: false,
};

const NO_SUPERSERVER = { host: '127.0.0.1', port: 9 };

function withProber(tt: { teardown(fn: () => unknown): void }): Prober {
  const prober = new Prober();
  tt.teardown(() => prober.close());
  return prober;
}

/** One probe, bounded so that a prober bug fails the test instead of hanging it. */
function probe(prober: Prober, urls: string[], opts: Partial<ProbeOptions> = {}, superserverPort?: number) {
  const superserver =
    superserverPort === undefined ? NO_SUPERSERVER : { host: '127.0.0.1', port: superserverPort };
  const o = { ...OPTS, ...opts };
  return within(prober.probe({ urls, superserver }, o), o.timeoutMs * 2 + 5000, 'probe');
}

function answer(status: number, body: string): http.RequestListener {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  };
}

/** A chunked body that never ends: `first`, then filler every few ms until the client goes. */
function endless(first: string, fill = 'x'.repeat(1024)): http.RequestListener {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(first);
    const timer = setInterval(() => res.write(fill), 2);
    res.once('close', () => clearInterval(timer));
  };
}

t.test('status answers', async (t) => {
  const prober = withProber(t);

  t.test('200 SUCCESS is primary', async (t) => {
    const srv = await withHttpServer(t, answer(200, 'SUCCESS'));
    const r = await probe(prober, [srv.url()]);
    t.match(r, { kind: 'primary', status: 200, url: srv.url() });
    t.ok(r.latencyMs >= 0 && r.latencyMs < OPTS.timeoutMs, `latency ${r.latencyMs}`);
  });

  t.test('503 FAILED is not primary', async (t) => {
    const srv = await withHttpServer(t, answer(503, 'FAILED'));
    t.match(await probe(prober, [srv.url()]), { kind: 'not_primary', status: 503, url: srv.url() });
  });

  t.test('200 without the expected text is unexpected', async (t) => {
    const srv = await withHttpServer(t, answer(200, 'FAILED'));
    t.match(await probe(prober, [srv.url()]), { kind: 'unexpected', status: 200 });
  });

  t.test('expectBody null: the status alone decides', async (t) => {
    const srv = await withHttpServer(t, answer(200, 'anything'));
    t.match(await probe(prober, [srv.url()], { expectBody: null }), { kind: 'primary', status: 200 });
  });

  t.test('another expected status', async (t) => {
    const srv = await withHttpServer(t, answer(204, ''));
    t.match(await probe(prober, [srv.url()], { expectStatus: 204, expectBody: null }), {
      kind: 'primary',
      status: 204,
    });
  });

  t.test('a 302 redirect is not followed', async (t) => {
    let targetHits = 0;
    const srv = await withHttpServer(t, (req, res) => {
      if (req.url === '/target') {
        targetHits++;
        answer(200, 'SUCCESS')(req, res);
        return;
      }
      res.writeHead(302, { location: '/target' });
      res.end();
    });
    t.match(await probe(prober, [srv.url('/start')]), { kind: 'unexpected', status: 302 });
    t.equal(targetHits, 0, 'redirect target never requested');
  });

  t.test('the needle split across two chunks is found', async (t) => {
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.write('...SUCC');
      setTimeout(() => res.end('ESS...'), 30);
    });
    t.match(await probe(prober, [srv.url()]), { kind: 'primary', status: 200 });
  });
});

t.test('bodies are read only as far as needed', async (t) => {
  const prober = withProber(t);
  const opts = { timeoutMs: 10_000, maxBodyBytes: 8192 };

  t.test('endless body without the text: decided from the capped prefix', async (t) => {
    const srv = await withHttpServer(t, endless('FAILED'));
    const start = performance.now();
    t.match(await probe(prober, [srv.url()], opts), { kind: 'unexpected', status: 200 });
    t.ok(performance.now() - start < opts.timeoutMs / 2, 'well before the timeout');
    await within(srv.closedConnections(1), 5000, 'server sees the connection closed');
  });

  t.test('endless body with the text first: primary', async (t) => {
    const srv = await withHttpServer(t, endless('SUCCESS'));
    t.match(await probe(prober, [srv.url()], opts), { kind: 'primary', status: 200 });
    await within(srv.closedConnections(1), 5000, 'server sees the connection closed');
  });

  t.test('text beyond maxBodyBytes does not count', async (t) => {
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.end('x'.repeat(10_000) + 'SUCCESS');
    });
    t.match(await probe(prober, [srv.url()], opts), { kind: 'unexpected', status: 200 });
    t.match(await probe(prober, [srv.url()], { ...opts, maxBodyBytes: 20_000 }), { kind: 'primary' });
  });

  const HUGE = 50 * 1024 * 1024;
  /** A 50 MB body written with backpressure; `result` says how far it got before the client left. */
  function huge(first: string) {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const result = { sent: 0, finished: false, closed: false };
    const handler: http.RequestListener = (_req, res) => {
      res.writeHead(200, { 'content-length': String(HUGE) });
      res.write(first);
      result.sent = first.length;
      const pump = (): void => {
        while (result.sent < HUGE && !res.destroyed) {
          const n = Math.min(chunk.length, HUGE - result.sent);
          result.sent += n;
          if (!res.write(chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        if (!res.destroyed) res.end();
      };
      pump();
      res.once('finish', () => (result.finished = true));
      res.once('close', () => (result.closed = true));
    };
    return { handler, result };
  }

  for (const expectBody of ['SUCCESS', 'NEVER-THERE', null]) {
    t.test(`a 50 MB body is not read (expectBody ${expectBody})`, async (t) => {
      const { handler, result } = huge('SUCCESS');
      const srv = await withHttpServer(t, handler);
      const r = await probe(prober, [srv.url()], { ...opts, expectBody });
      t.match(r, { kind: expectBody === 'NEVER-THERE' ? 'unexpected' : 'primary', status: 200 });
      await within(srv.closedConnections(1), 5000, 'server sees the connection closed');
      t.notOk(result.finished, 'the body was never completely sent');
      t.ok(result.sent < HUGE / 2, `server got rid of ${result.sent} bytes only`);
    });
  }
});

t.test('failures', async (t) => {
  const prober = withProber(t);

  t.test('refused port: error ECONNREFUSED', async (t) => {
    const port = await closedPort();
    t.match(await probe(prober, [`http://127.0.0.1:${port}/`]), {
      kind: 'error',
      code: 'ECONNREFUSED',
      superserver: null,
    });
  });

  t.test('garbage instead of HTTP: error MLB_ERR_BAD_RESPONSE', async (t) => {
    const srv = await withTcpServer(t, (socket) =>
      socket.end(Buffer.from('\x00\xffnot http at all\r\n\r\n')),
    );
    t.match(await probe(prober, [srv.url()]), { kind: 'error', code: 'MLB_ERR_BAD_RESPONSE' });
  });

  t.test('a server that resets every connection: error ECONNRESET after one retry', async (t) => {
    const srv = await withTcpServer(t, (socket) => socket.once('data', () => socket.resetAndDestroy()));
    t.match(await probe(prober, [srv.url()]), { kind: 'error', code: 'ECONNRESET' });
    t.equal(srv.connections(), 2, 'one retry, no more');
  });

  t.test('https to a plain HTTP port: error MLB_ERR_TLS', async (t) => {
    const srv = await withHttpServer(t, answer(200, 'SUCCESS'));
    t.match(await probe(prober, [`https://127.0.0.1:${srv.port}/`]), { kind: 'error', code: 'MLB_ERR_TLS' });
  });

  t.test('unknown host: error ENOTFOUND', async (t) => {
    const r = await probe(prober, ['http://mirrorlb-no-such-host.invalid/'], { timeoutMs: 5000 });
    t.equal(r.kind, 'error');
    if (r.kind === 'error') t.ok(['ENOTFOUND', 'EAI_AGAIN'].includes(r.code), `code ${r.code}`);
  });

  t.test('no URL or a malformed one: error, no throw', async (t) => {
    t.match(await probe(prober, []), { kind: 'error', code: 'MLB_ERR_NO_CHECK_URL' });
    t.match(await probe(prober, ['not a url']), { kind: 'error', code: 'MLB_ERR_BAD_URL' });
    t.match(await probe(prober, ['ftp://127.0.0.1/']), { kind: 'error', code: 'MLB_ERR_BAD_URL' });
  });

  t.test('accepts but never answers: timeout, bounded by the timeout', async (t) => {
    const srv = await withTcpServer(t);
    const timeoutMs = 300;
    const start = performance.now();
    const r = await probe(prober, [srv.url()], { timeoutMs });
    const elapsed = performance.now() - start;
    t.match(r, { kind: 'timeout', superserver: null });
    t.ok(r.latencyMs >= timeoutMs - 5, `latency ${r.latencyMs} covers the timeout`);
    t.ok(elapsed < timeoutMs + 3000, `finished after ${elapsed} ms`);
    await within(srv.closedConnections(1), 5000, 'hung connection closed by the prober');
  });

  t.test('headers then a body that stalls before the text: timeout', async (t) => {
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.write('SUCC');
    });
    t.match(await probe(prober, [srv.url()], { timeoutMs: 300 }), { kind: 'timeout' });
    await within(srv.closedConnections(1), 5000, 'stalled connection closed by the prober');
  });

  t.test('a body broken off before the text: error MLB_ERR_INCOMPLETE_BODY', async (t) => {
    for (const headers of [{}, { 'content-length': '100' }]) {
      const srv = await withHttpServer(t, (_req, res) => {
        res.writeHead(200, headers);
        res.write('SUCC', () => setTimeout(() => res.socket?.destroy(), 20));
      });
      t.match(await probe(prober, [srv.url()]), { kind: 'error', code: 'MLB_ERR_INCOMPLETE_BODY' });
    }
  });

  t.test('a timeout wins over a fast failure of another URL', async (t) => {
    const hung = await withTcpServer(t);
    const port = await closedPort();
    t.match(await probe(prober, [`http://127.0.0.1:${port}/`, hung.url()], { timeoutMs: 300 }), {
      kind: 'timeout',
    });
  });
});

t.test('several URLs: the first authoritative answer decides', async (t) => {
  const prober = withProber(t);

  t.test('first hangs, second answers not primary: decided by the second, at once', async (t) => {
    const hung = await withTcpServer(t);
    const good = await withHttpServer(t, answer(503, 'FAILED'));
    const timeoutMs = 8000;
    const start = performance.now();
    const r = await probe(prober, [hung.url(), good.url()], { timeoutMs });
    t.match(r, { kind: 'not_primary', status: 503, url: good.url() });
    t.ok(performance.now() - start < timeoutMs / 2, 'did not wait for the hung URL');
    t.match(r.answers, [
      { url: hung.url(), outcome: 'skipped' },
      { url: good.url(), outcome: 'not_primary' },
    ]);
    await within(hung.closedConnections(1), 5000, 'request to the hung URL aborted');
  });

  t.test(
    'first hangs, second answers primary: decided by the second, the round waits for the first',
    async (t) => {
      // A primary answer is trusted only once no other URL says otherwise (contradiction).
      const hung = await withTcpServer(t);
      const good = await withHttpServer(t, answer(200, 'SUCCESS'));
      const r = await probe(prober, [hung.url(), good.url()], { timeoutMs: 300 });
      t.match(r, { kind: 'primary', status: 200, url: good.url(), contradicted: false });
      t.match(r.answers, [
        { url: hung.url(), outcome: 'timeout' },
        { url: good.url(), outcome: 'primary', status: 200 },
      ]);
    },
  );

  t.test('an unexpected answer never decides; the other URL does', async (t) => {
    const broken = await withHttpServer(t, answer(500, '<html>CSP Gateway error</html>'));
    const good = await withHttpServer(t, answer(200, 'SUCCESS'));
    const r = await probe(prober, [broken.url(), good.url()]);
    t.match(r, { kind: 'primary', url: good.url() });
    t.match(r.answers, [{ outcome: 'unexpected', status: 500 }, { outcome: 'primary' }]);
  });

  t.test('every URL unexpected: unexpected, with the SuperServer checked', async (t) => {
    const a = await withHttpServer(t, answer(500, 'oops'));
    const b = await withHttpServer(t, answer(503, '<html>Service Unavailable</html>'));
    const ss = await withTcpServer(t);
    const r = await probe(
      prober,
      [a.url(), b.url()],
      { notPrimaryBody: 'FAILED', checkSuperserver: true },
      ss.port,
    );
    t.match(r, { kind: 'unexpected', status: 500, url: a.url(), superserver: true });
    t.match(r.answers, [
      { outcome: 'unexpected', status: 500 },
      { outcome: 'unexpected', status: 503 },
    ]);
  });

  t.test('URLs that contradict each other: the first authoritative one decides, contradicted', async (t) => {
    const yes = await withHttpServer(t, answer(200, 'SUCCESS'));
    const no = await withHttpServer(t, (_req, res) => {
      // Later than the primary answer, so the primary one is first.
      setTimeout(() => answer(503, 'FAILED')(_req, res), 50);
    });
    const r = await probe(prober, [yes.url(), no.url()]);
    t.match(r, { kind: 'primary', url: yes.url(), contradicted: true });
    t.match(r.answers, [{ outcome: 'primary' }, { outcome: 'not_primary' }]);
  });

  t.test('first refused, second answers: decided by the second', async (t) => {
    const port = await closedPort();
    const good = await withHttpServer(t, answer(503, 'FAILED'));
    t.match(await probe(prober, [`http://127.0.0.1:${port}/`, good.url()]), {
      kind: 'not_primary',
      status: 503,
      url: good.url(),
    });
  });

  t.test('all refused: error with the failure code', async (t) => {
    const a = await closedPort();
    const b = await closedPort();
    t.match(await probe(prober, [`http://127.0.0.1:${a}/`, `http://127.0.0.1:${b}/`]), {
      kind: 'error',
      code: 'ECONNREFUSED',
    });
  });
});

t.test('SuperServer check', async (t) => {
  const prober = withProber(t);
  const superserver = await withTcpServer(t);
  const deadPort = await closedPort();
  const refusedUrl = `http://127.0.0.1:${deadPort}/`;

  t.test('checkSuperserver itself', async (t) => {
    t.equal(await checkSuperserver({ host: '127.0.0.1', port: superserver.port }, 2000), true);
    t.equal(await checkSuperserver({ host: '127.0.0.1', port: deadPort }, 2000), false);
    const aborted = new AbortController();
    aborted.abort();
    t.equal(
      await checkSuperserver({ host: '127.0.0.1', port: superserver.port }, 2000, aborted.signal),
      false,
    );
    await within(superserver.closedConnections(1), 5000, 'connection closed at once');
  });

  t.test('reported on error', async (t) => {
    const on = { checkSuperserver: true };
    t.match(await probe(prober, [refusedUrl], on, superserver.port), { kind: 'error', superserver: true });
    t.match(await probe(prober, [refusedUrl], on, deadPort), { kind: 'error', superserver: false });
    t.match(await probe(prober, [refusedUrl], {}, superserver.port), { kind: 'error', superserver: null });
  });

  t.test('reported on timeout', async (t) => {
    const hung = await withTcpServer(t);
    const on = { checkSuperserver: true, timeoutMs: 300 };
    t.match(await probe(prober, [hung.url()], on, superserver.port), { kind: 'timeout', superserver: true });
    t.match(await probe(prober, [hung.url()], on, deadPort), { kind: 'timeout', superserver: false });
  });

  t.test('not tried when a URL answered', async (t) => {
    const before = superserver.connections();
    const good = await withHttpServer(t, answer(503, 'FAILED'));
    t.match(await probe(prober, [good.url()], { checkSuperserver: true }, superserver.port), {
      kind: 'not_primary',
    });
    t.equal(superserver.connections(), before);
  });
});

t.test('keep-alive', async (t) => {
  const prober = withProber(t);
  const cases: Array<[string, http.RequestListener, Partial<ProbeOptions>]> = [
    ['content-length body, text expected', answer(200, 'SUCCESS'), {}],
    ['content-length body, no text expected', answer(503, 'FAILED'), { expectBody: null }],
    [
      'small chunked body',
      (_req, res) => {
        res.writeHead(200);
        res.write('SUCC');
        res.end('ESS');
      },
      {},
    ],
  ];
  for (const [name, handler, opts] of cases) {
    t.test(`two probes in a row reuse one connection: ${name}`, async (t) => {
      const srv = await withHttpServer(t, handler);
      const first = await probe(prober, [srv.url()], opts);
      const second = await probe(prober, [srv.url()], opts);
      t.same(second.kind, first.kind);
      t.ok(first.kind === 'primary' || first.kind === 'not_primary', first.kind);
      t.equal(srv.connections(), 1, 'one TCP connection');
    });
  }

  t.test('the rest of a body that comes after the decision is drained, not cut', async (t) => {
    // A long grace makes this independent of scheduling delays on a busy machine.
    const patient = new Prober({ drainGraceMs: 10_000 });
    t.teardown(() => patient.close());
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.write('SUCCESS');
      setTimeout(() => res.end(' and a tail'), 30);
    });
    t.match(await probe(patient, [srv.url()]), { kind: 'primary' });
    t.match(await probe(patient, [srv.url()], { expectBody: null }), { kind: 'primary' });
    t.equal(srv.connections(), 1, 'one TCP connection');
  });

  t.test('a body that stalls after the decision does not hold the probe', async (t) => {
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.write('SUCCESS');
    });
    const timeoutMs = 10_000;
    for (const expectBody of ['SUCCESS', null]) {
      const start = performance.now();
      t.match(await probe(prober, [srv.url()], { timeoutMs, expectBody }), { kind: 'primary' });
      t.ok(performance.now() - start < timeoutMs / 2, `expectBody ${expectBody}: not held until the timeout`);
    }
    await within(srv.closedConnections(2), 5000, 'stalled connections closed by the prober');
  });

  t.test('a kept-alive socket closed by the server under our feet is retried', async (t) => {
    const served = new WeakSet<net.Socket>();
    const srv = await withHttpServer(t, (req, res) => {
      // The second request on a connection meets a server that has just closed it.
      if (served.has(req.socket)) {
        req.socket.destroy();
        return;
      }
      served.add(req.socket);
      answer(200, 'SUCCESS')(req, res);
    });
    t.match(await probe(prober, [srv.url()]), { kind: 'primary' });
    t.match(await probe(prober, [srv.url()]), { kind: 'primary' });
    t.equal(srv.connections(), 2, 'the retry used a new connection');
  });
});

t.test('close', async (t) => {
  t.test('cancels probes in flight, is idempotent, later probes fail fast', async (t) => {
    const hung = await withTcpServer(t);
    const prober = new Prober();
    const inFlight = probe(prober, [hung.url()], { timeoutMs: 30_000, checkSuperserver: true });
    await within(
      (async () => {
        while (hung.connections() === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      5000,
      'probe connects',
    );
    prober.close();
    prober.close();
    const r: ProbeResult = await within(inFlight, 5000, 'cancelled probe');
    t.match(r, { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED', superserver: null });
    t.match(await probe(prober, [hung.url()]), { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED' });
    await within(hung.closedConnections(1), 5000, 'socket destroyed');
  });

  t.test('a probe closed while reading the body is not a verdict', async (t) => {
    let written!: () => void;
    const headersOut = new Promise<void>((resolve) => (written = resolve));
    const srv = await withHttpServer(t, (_req, res) => {
      res.writeHead(200);
      res.write('SUCC', () => written());
    });
    const prober = new Prober();
    const inFlight = probe(prober, [srv.url()], { timeoutMs: 30_000 });
    await within(headersOut, 5000, 'server answers');
    await new Promise((r) => setTimeout(r, 50));
    prober.close();
    t.match(await within(inFlight, 5000, 'cancelled probe'), {
      kind: 'error',
      code: 'MLB_ERR_PROBER_CLOSED',
    });
  });

  t.test('leaves nothing that keeps the process alive', async (t) => {
    // The servers live here; the child only probes, closes the prober and must then exit.
    const good = await withHttpServer(t, answer(200, 'SUCCESS'));
    const hung = await withTcpServer(t);
    const probeModule = new URL('../src/health/probe.js', import.meta.url).href;
    const script = `
      import { Prober } from ${JSON.stringify(probeModule)};
      const prober = new Prober();
      const opts = { timeoutMs: 60000, expectStatus: 200, expectBody: 'SUCCESS', maxBodyBytes: 4096, checkSuperserver: false };
      const target = (url) => ({ urls: [url], superserver: { host: '127.0.0.1', port: 9 } });
      const kept = await prober.probe(target(${JSON.stringify(good.url())}), opts);
      const pending = prober.probe(target(${JSON.stringify(hung.url())}), opts);
      await new Promise((r) => setTimeout(r, 200));
      prober.close();
      prober.close();
      console.log(JSON.stringify([kept.kind, (await pending).kind]));
    `;
    const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
    const child = spawn(process.execPath, [...loader, '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await within(
      new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))),
      20_000,
      'child process exit after close()',
    );
    t.equal(code, 0);
    t.same(JSON.parse(out.trim()), ['primary', 'error']);
  });
});

t.test('probeErrorCode', async (t) => {
  t.equal(probeErrorCode(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED');
  t.equal(
    probeErrorCode(Object.assign(new Error('x'), { code: 'HPE_INVALID_CONSTANT' })),
    'MLB_ERR_BAD_RESPONSE',
  );
  t.equal(
    probeErrorCode(Object.assign(new Error('x'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })),
    'MLB_ERR_TLS',
  );
  t.equal(probeErrorCode(new TypeError('bad')), 'MLB_ERR_BAD_URL');
  t.equal(probeErrorCode(new Error('no code')), 'MLB_ERR_PROBE_FAILED');
  t.equal(probeErrorCode(null), 'MLB_ERR_PROBE_FAILED');
});
