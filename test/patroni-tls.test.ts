/**
 * Checks over TLS against a real Patroni: two Patroni 3.0.2 nodes (PostgreSQL 15, etcd v2)
 * whose REST API is on HTTPS with a private CA and `verify_client: required`, all made here
 * with the openssl command, and the daemon in front with `kind: patroni` members checked at
 * `https://127.0.0.1:<rest>/primary`. Two daemons run the same mirror side by side:
 *
 * - one with `health.tls: { ca, cert, key }`: finds the leader, a real query through it
 *   reaches the leader, and after `patronictl switchover` (itself over HTTPS with a client
 *   certificate) new clients reach the new leader;
 * - one with the CA only (`nocert`): Patroni refuses the handshake, so it never has a
 *   primary during the whole run, its URLs show TLS errors in /status, and nothing is
 *   demoted or crashes.
 *
 * Needs root, the Debian packages postgresql-15, patroni, etcd-server, python3-psycopg2 and
 * openssl; skips with one line without them (a failure under MIRRORLB_TEST_STRICT=1).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import {
  httpGet,
  patroniMissing,
  startCluster,
  type PatroniNode,
  waitFor,
} from '../bench/lib/patroni-cluster.mjs';
import type { StatusDoc } from '../src/admin/status.js';
import type { TransitionEvent } from '../src/events.js';
import { withBalancer } from './helpers/balancer.js';
import { makePki, opensslMissing, type PkiFiles } from './helpers/test-pki.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
const BASE = 22300; // this file's fixed ports: 22301-22322 (below the ephemeral range)
/** The codes of a refused or failed TLS handshake (as src/health/probe-error.ts classes them). */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|EPROTO$)/;

/**
 * A CA, a certificate for Patroni's REST API on 127.0.0.1 (also a client certificate:
 * Patroni and patronictl present `restapi.certfile` to the other nodes) and one for mirrorlb.
 */
function makePatroniPki(dir: string): PkiFiles {
  return makePki(
    dir,
    'mirrorlb Patroni test CA',
    { name: 'patroni', ext: 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' },
    { name: 'mirrorlb', ext: 'extendedKeyUsage=clientAuth\n' },
  );
}

const why = (await patroniMissing()) ?? opensslMissing();
if (why !== null) {
  if (STRICT) t.fail(`Patroni TLS end-to-end test cannot run: ${why} (MIRRORLB_TEST_STRICT=1)`);
  else t.test(`Patroni REST API over HTTPS (${why})`, { skip: why }, () => undefined);
} else {
  t.test('Patroni REST API over HTTPS with verify_client: required', (tt) => main(tt));
}

async function main(t: Test): Promise<void> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'mirrorlb-patroni-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePatroniPki(dir);
  const cluster = await startCluster({
    prefix: 'pgtls',
    base: BASE,
    log: (m) => t.comment(m),
    restapiTls: {
      certfile: pki.serverCert,
      keyfile: pki.serverKey,
      cafile: pki.ca,
      verify_client: 'required',
    },
  });
  t.teardown(() => cluster.destroy());
  const [pg1, pg2] = cluster.nodes;

  // The cluster really requires a client certificate: the CA alone gets no answer.
  const url1 = cluster.restUrl(pg1);
  t.match(url1, /^https:\/\/127\.0\.0\.1:\d+\/primary$/);
  t.equal(
    (await httpGet(url1, 3000, { ca: readFileSync(pki.ca, 'utf8') })).status,
    0,
    'without a client certificate: no answer',
  );
  t.equal((await cluster.rest(pg1)).status, 200, 'with one: pg1 answers 200 on /primary');

  /** The same mirror of the two nodes, with the given `health.tls`. */
  const yaml = (tls: string): string =>
    [
      'mirrors:',
      '  - name: pg',
      '    kind: patroni',
      '    listen: 127.0.0.1:0',
      '    health:',
      '      interval: 200ms',
      '      fast_interval: 200ms',
      '      timeout: 2s',
      '      rise: 1',
      '      fall: 2',
      `      tls: ${tls}`,
      '    proxy:',
      '      hold_timeout: 10s',
      '    members:',
      ...[pg1, pg2].flatMap((n) => [
        `      - name: ${n.name}`,
        `        address: 127.0.0.1:${n.pgPort}`,
        `        check: ${cluster.restUrl(n)}`,
      ]),
      'admin:',
      '  listen: 127.0.0.1:0',
    ].join('\n');
  // Two daemons side by side: one with the client certificate, one with the CA only.
  const lb = await withBalancer(t, yaml(`{ ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }`));
  const nocertLb = await withBalancer(t, yaml(`{ ca: ${pki.ca} }`));
  const admin = async <T>(port: number, path: string): Promise<T> => {
    const r = await httpGet(`http://127.0.0.1:${port}${path}`, 3000);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as T;
  };
  const mirrorOf = async (port: number) => (await admin<StatusDoc>(port, '/status')).mirrors[0]!;
  const mirror = () => mirrorOf(lb.adminPort());
  const nocertMirror = () => mirrorOf(nocertLb.adminPort());

  // The nocert mirror, sampled through the whole run: it must never have a primary.
  const nocertPrimaries = new Set<string>();
  let sampling = true;
  let samples = 0;
  const samplerErrors: string[] = [];
  const sampler = (async () => {
    while (sampling) {
      try {
        const m = await nocertMirror();
        samples++;
        if (m.primary !== null) nocertPrimaries.add(m.primary);
      } catch (err) {
        samplerErrors.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  /** Which node a new client through mirror `pg` reaches, and whether it takes writes. */
  const through = async (): Promise<{ port: number; recovery: boolean }> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: lb.port('pg'),
      user: 'postgres',
      database: 'postgres',
      connectionTimeoutMillis: 5000,
    });
    c.on('error', () => undefined);
    await c.connect();
    try {
      const { rows } = await c.query<{ port: number; recovery: boolean }>(
        'select inet_server_port() as port, pg_is_in_recovery() as recovery',
      );
      return rows[0]!;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const reaches = (n: PatroniNode) => async () => {
    const r = await through();
    return r.port === n.pgPort && !r.recovery;
  };

  try {
    await waitFor('mirror pg with a primary', async () => (await mirror()).primary === pg1.name, 30_000, 100);
    t.same(
      await through(),
      { port: pg1.pgPort, recovery: false },
      'a client through mirrorlb reaches pg1, the leader',
    );

    const r = await cluster.switchover(pg1, pg2);
    t.equal(r.code, 0, 'patronictl switchover pg1 -> pg2 (over HTTPS, with a client certificate)', {
      output: r.stdout + r.stderr,
    });
    await waitFor('pg2 writable leader', async () => (await cluster.writableLeader()) === pg2, 60_000, 200);
    await waitFor('new clients on pg2', reaches(pg2), 30_000, 200);
    t.pass('after the switchover, new clients through mirrorlb reach pg2');
    t.equal((await mirror()).primary, pg2.name, "mirror pg's primary is pg2");

    sampling = false;
    await sampler;
    const nocert = await nocertMirror();
    t.ok(samples >= 10, `nocert sampled ${samples} times during the run`);
    t.same([...nocertPrimaries], [], 'nocert never had a primary');
    t.same(samplerErrors, [], 'the admin API answered every sample');
    t.equal(nocert.accepting, false, 'nocert takes no clients');
    for (const m of nocert.members) {
      t.equal(m.role !== 'primary', true, `nocert ${m.name} is not primary (${m.role})`);
      t.match(m.lastCheck?.result ?? '', /^error MLB_ERR_TLS/, `nocert ${m.name}: its result is a TLS error`);
      for (const c of m.checks) {
        t.equal(c.outcome, 'error', `nocert ${m.name} ${c.url}: the check is an error`);
        t.match(c.code ?? '', TLS_CODE, `nocert ${m.name}: a TLS error in /status (${c.code})`);
      }
    }
    const events = await admin<TransitionEvent[]>(lb.adminPort(), '/events');
    const nocertEvents = await admin<TransitionEvent[]>(nocertLb.adminPort(), '/events');
    const onNocert = nocertEvents.filter(
      (e) => e.kind === 'failover' || (e.kind === 'role' && e.to === 'primary'),
    );
    t.same(onNocert, [], 'no failover and no promotion on nocert');
    t.ok(
      events.some((e) => e.kind === 'failover' && e.member === pg2.name),
      'the failover to pg2 on mirror pg is in /events',
    );
    const outcomes = (await mirror()).members.map((m) => [m.name, m.checks.map((c) => c.outcome)]);
    t.same(
      outcomes,
      [
        [pg1.name, ['not_primary']],
        [pg2.name, ['primary']],
      ],
      'with the certificate, both nodes speak: pg1 not primary, pg2 primary',
    );
    for (const [name, b] of [
      ['pg', lb],
      ['nocert', nocertLb],
    ] as const) {
      const errors = b.logs.records.filter((r) => Number(r.level) >= 50);
      t.same(errors, [], `${name}: no error logged`);
    }
    t.comment(`nocert log messages: ${[...new Set(nocertLb.logs.messages())].join('; ')}`);
  } catch (err) {
    for (const name of ['pg1', 'pg2', 'etcd']) t.comment(`--- ${name} log tail\n${cluster.tail(name)}`);
    throw err;
  } finally {
    sampling = false;
    await sampler;
  }
  t.comment(`Patroni TLS end-to-end run time ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
