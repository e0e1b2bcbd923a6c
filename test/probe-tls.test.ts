/**
 * https check URLs with per-target TLS settings, against a real TLS server made here: a CA,
 * a server certificate for 127.0.0.1 and localhost, and a client certificate, all made with
 * the openssl command, and a server that requires a client certificate from that CA (as
 * Patroni's REST API with `verify_client: required`).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Prober, type ProbeOptions, type ProbeTarget, type ProbeTls } from '../src/health/probe.js';
import type { ProbeResult } from '../src/health/types.js';
import { within } from './helpers/http.js';
import { makePki, opensslMissing, type PkiFiles } from './helpers/test-pki.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

const OPTS: ProbeOptions = {
  timeoutMs: 5000,
  expectStatus: 200,
  expectBody: 'SUCCESS',
  notPrimaryBody: 'FAILED',
  maxBodyBytes: 4096,
  checkSuperserver: false,
};

type Pki = PkiFiles;

/** The PKI as PEM text, as the prober and the test server take it. */
function makePemPki(dir: string): Pki {
  const files = makePki(
    dir,
    'mirrorlb test CA',
    { name: 'server', ext: 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' },
    { name: 'client', ext: 'extendedKeyUsage=clientAuth\n' },
  );
  const read = (path: string): string => readFileSync(path, 'utf8');
  return {
    ca: read(files.ca),
    serverCert: read(files.serverCert),
    serverKey: read(files.serverKey),
    clientCert: read(files.clientCert),
    clientKey: read(files.clientKey),
  };
}

/**
 * OpenSSL's reasons for a certificate that does not chain to a trusted CA: which one depends
 * on whether the server sends its CA along (OpenSSL's server builds the chain from its `ca`).
 */
const VERIFY_FAILED =
  /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/;

const missing = opensslMissing();
if (missing !== null && STRICT) t.fail(`${missing} and MIRRORLB_TEST_STRICT=1`);

/** The TLS status server: `role` picks its answer; counts full TLS handshakes. */
async function withTlsServer(tt: { teardown(fn: () => unknown): void }, pki: Pki) {
  let handshakes = 0;
  let role: 'primary' | 'backup' = 'primary';
  const sockets = new Set<net.Socket>();
  const server = https.createServer(
    { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey, requestCert: true, rejectUnauthorized: true },
    (_req, res) => {
      const primary = role === 'primary';
      res.writeHead(primary ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(primary ? 'SUCCESS' : 'FAILED');
    },
  );
  server.on('secureConnection', () => handshakes++);
  const drained: (() => void)[] = [];
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => {
      sockets.delete(s);
      if (sockets.size === 0) for (const fn of drained.splice(0)) fn();
    });
  });
  // A rejected client certificate is the client's problem, not the server's.
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/csp/mirror_status.cxw`,
    handshakes: () => handshakes,
    open: () => sockets.size,
    /** Resolves when no client connection is open. */
    allClosed: () => new Promise<void>((resolve) => (sockets.size === 0 ? resolve() : drained.push(resolve))),
    setRole: (r: 'primary' | 'backup') => (role = r),
  };
}

t.test(
  'https checks with a CA, a client certificate and a server name',
  { skip: missing !== null && !STRICT ? missing : false },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mirrorlb-tls-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const pki = makePemPki(dir);
    const srv = await withTlsServer(t, pki);
    const prober = new Prober();
    t.teardown(() => prober.close());

    const full: ProbeTls = {
      ca: pki.ca,
      cert: pki.clientCert,
      key: pki.clientKey,
      servername: null,
      verify: true,
    };
    const target = (tls: ProbeTls | null): ProbeTarget => ({
      urls: [srv.url],
      superserver: { host: '127.0.0.1', port: 9 },
      tls,
    });
    const probe = (tgt: ProbeTarget): Promise<ProbeResult> =>
      within(prober.probe(tgt, OPTS), 15_000, 'TLS probe');
    const urlCode = (r: ProbeResult): string | null => r.answers?.[0]?.code ?? null;

    t.test('with the CA and a client certificate: the member speaks', async (t) => {
      const good = target(full);
      t.match(await probe(good), { kind: 'primary', status: 200 });
      srv.setRole('backup');
      t.match(await probe(good), { kind: 'not_primary', status: 503 });
      srv.setRole('primary');
      t.match(
        await probe(target({ ...full, servername: 'localhost' })),
        { kind: 'primary' },
        'by its DNS name',
      );
    });

    t.test('one TLS connection is kept alive across probes of one target', async (t) => {
      const fresh: ProbeTls = { ...full };
      const before = srv.handshakes();
      const a = target(fresh);
      // Another target with the same TLS object shares its agent and so its connection.
      const b = target(fresh);
      for (const tgt of [a, b, a, b, a]) t.match(await probe(tgt), { kind: 'primary' });
      t.equal(srv.handshakes() - before, 1, 'one handshake for five probes');
    });

    t.test("without the CA: the server's certificate is not verified, a fast error", async (t) => {
      const r = await probe(target({ ...full, ca: null }));
      t.match(r, { kind: 'error', code: 'MLB_ERR_TLS' });
      t.match(urlCode(r), VERIFY_FAILED, 'its reason');
    });

    t.test('with no TLS settings at all: the same (Node roots only)', async (t) => {
      const r = await probe(target(null));
      t.match(r, { kind: 'error', code: 'MLB_ERR_TLS' });
      t.match(urlCode(r), VERIFY_FAILED);
    });

    t.test('without the client certificate: the handshake is refused, a fast error', async (t) => {
      const r = await probe(target({ ...full, cert: null, key: null }));
      t.equal(r.kind, 'error', `not ${r.kind}`);
      t.match(
        urlCode(r),
        /^(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ERR_SSL_\w+|EPROTO|ECONNRESET)$/,
        'its reason',
      );
    });

    t.test('a server name the certificate does not hold: altname error', async (t) => {
      const r = await probe(target({ ...full, servername: 'db.example.org' }));
      t.match(r, { kind: 'error', code: 'MLB_ERR_TLS' });
      t.equal(urlCode(r), 'ERR_TLS_CERT_ALTNAME_INVALID');
    });

    t.test("close() closes the TLS agents' kept-alive connections", async (t) => {
      // Its own server and prober: nothing else holds a connection to them.
      const own = new Prober();
      t.teardown(() => own.close());
      const other = await withTlsServer(t, pki);
      const tgt: ProbeTarget = { urls: [other.url], superserver: { host: '127.0.0.1', port: 9 }, tls: full };
      t.match(await within(own.probe(tgt, OPTS), 15_000, 'probe'), { kind: 'primary' });
      t.equal(other.open(), 1, 'its connection is kept alive');
      own.close();
      // Bounded below the agents' 4 s idle timeout, which would close it without close().
      await within(other.allClosed(), 3000, 'kept-alive TLS connection closed by close()');
      t.match(await own.probe(tgt, OPTS), { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED' });
    });

    t.test('verify: false answers again without the CA or the right name', async (t) => {
      t.match(await probe(target({ ...full, ca: null, verify: false })), { kind: 'primary' });
      t.match(await probe(target({ ...full, ca: null, servername: 'db.example.org', verify: false })), {
        kind: 'primary',
      });
    });
  },
);
