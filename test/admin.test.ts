import t from 'tap';
import net from 'node:net';
import os from 'node:os';
import type { StatusDoc } from '../src/admin/status.js';
import { parseConfig, configWarnings } from '../src/config/load.js';
import type { TransitionEvent } from '../src/events.js';
import { startBalancer } from '../src/cli/run.js';
import { createLogger } from '../src/log.js';
import { LogSink, withBalancer, yamlFor } from './helpers/balancer.js';
import {
  connect,
  eventually,
  httpRequest,
  readGreeting,
  readUpTo,
  withSim,
  type HttpAnswer,
} from './helpers/sim.js';

const TOKEN = 'tok-3f9a1c0e7b2d';

/** Two members, ap1a primary; the admin API protected by TOKEN unless `token` is null. */
async function setup(t: Tap.Test, token: string | null = TOKEN) {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }, token === null ? '' : `  token: ${token}`));
  const port = lb.adminPort();
  t.ok(await eventually(() => lb.daemon.mirrorReady('ap1') === true, 5000), 'ap1 has a primary');
  const post = (path: string, auth: string | null = `Bearer ${TOKEN}`): Promise<HttpAnswer> =>
    raw(
      port,
      `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth === null ? '' : `Authorization: ${auth}\r\n`}Content-Length: 0\r\n\r\n`,
    );
  const status = async (): Promise<StatusDoc> =>
    JSON.parse((await httpRequest(port, '/status')).body) as StatusDoc;
  const member = async (name: string) => (await status()).mirrors[0]!.members.find((m) => m.name === name)!;
  return { a, b, lb, port, post, status, member };
}

/** Sends raw bytes and parses the one HTTP answer (bounded). */
function raw(
  port: number,
  request: string | Buffer,
  timeoutMs = 5000,
  host = '127.0.0.1',
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no answer in time'));
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks).toString('latin1')));
    });
    s.end(request);
  });
}

function parseAnswer(text: string): HttpAnswer {
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n') };
}

t.test('admin actions need the bearer token when one is set', async (t) => {
  const { post, member } = await setup(t);
  const path = '/mirrors/ap1/members/ap1b/drain';
  for (const [auth, why] of [
    [null, 'no Authorization header'],
    ['Bearer ', 'an empty token'],
    ['Bearer wrong', 'a wrong token'],
    [`Bearer ${TOKEN}x`, 'the token with a byte more'],
    [`Bearer ${TOKEN.slice(0, -1)}`, 'the token with a byte less'],
    [`Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, 'another scheme'],
    [TOKEN, 'the token without the scheme'],
  ] as const) {
    const res = await post(path, auth);
    t.equal(res.status, 401, `401 for ${why}`);
    t.equal(res.headers['www-authenticate'], 'Bearer');
    t.match(JSON.parse(res.body), { error: 'MLB_ERR_UNAUTHORIZED' });
  }
  t.equal((await member('ap1b')).state, 'backup', 'nothing changed');
  // Unknown names are not revealed to a caller without the token.
  t.equal((await post('/mirrors/nope/members/ap1b/drain', null)).status, 401);

  const ok = await post(path, `bearer ${TOKEN}`);
  t.equal(ok.status, 200, 'the scheme name is case-insensitive');
  t.same(JSON.parse(ok.body), { mirror: 'ap1', member: 'ap1b', action: 'drain', ok: true });
  t.equal((await member('ap1b')).state, 'draining');
  t.equal((await post('/mirrors/ap1/members/ap1b/enable')).status, 200);
  t.equal((await member('ap1b')).state, 'backup');
});

t.test('without a token the actions are open (loopback)', async (t) => {
  const { post, member } = await setup(t, null);
  t.equal((await post('/mirrors/ap1/members/ap1b/disable', null)).status, 200);
  t.equal((await member('ap1b')).state, 'disabled');
});

t.test('unknown mirror or member: 404; wrong method: 405 with Allow; bad paths: 400/404', async (t) => {
  const { post, port } = await setup(t);
  t.equal((await post('/mirrors/nope/members/ap1a/drain')).status, 404, 'unknown mirror');
  const unknown = await post('/mirrors/ap1/members/ap2a/drain');
  t.equal(unknown.status, 404, 'unknown member');
  t.match(JSON.parse(unknown.body), { error: 'MLB_ERR_NOT_FOUND' });
  t.equal((await post('/mirrors/ap1/members/ap1a/reboot')).status, 404, 'unknown action');
  t.equal(
    (await post('/mirrors/ap1/members/ap1a%2Fx/drain')).status,
    404,
    'an encoded slash is part of the name',
  );

  const get = await httpRequest(port, '/mirrors/ap1/members/ap1a/drain');
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'POST');
  for (const [method, path] of [
    ['POST', '/status'],
    ['DELETE', '/metrics'],
    ['PUT', '/events'],
    ['POST', '/'],
    ['PATCH', '/healthz'],
  ] as const) {
    const res = await httpRequest(port, path, { method });
    t.equal(res.status, 405, `${method} ${path}: 405`);
    t.equal(res.headers.allow, 'GET, HEAD');
    t.match(JSON.parse(res.body), { error: 'MLB_ERR_METHOD' });
  }

  t.equal((await raw(port, 'GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400, 'malformed escape');
  t.equal((await raw(port, 'GET /mirrors/%E0%A4%A/members/x/drain HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400);
  for (const path of [
    '/nope',
    '/status/x',
    '/../status',
    '//status',
    '/mirrors//members/ap1a/drain',
    '/mirrors/ap1/members/ap1a',
    `/${'x'.repeat(4000)}`,
  ]) {
    t.equal(
      (await raw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)).status,
      404,
      `404 for ${path.slice(0, 40)}`,
    );
  }
  t.equal(
    (await raw(port, 'GET /status?x=%zz&y HTTP/1.1\r\nHost: x\r\n\r\n')).status,
    200,
    'the query is ignored',
  );
  t.equal((await raw(port, 'this is not http\r\n\r\n')).status, 400, 'garbage gets a 400');
  t.equal(
    (await raw(port, `GET / HTTP/1.1\r\nX: ${'y'.repeat(64 * 1024)}\r\n\r\n`)).status,
    431,
    'oversized headers are refused',
  );
  t.equal((await httpRequest(port, '/healthz')).status, 200, 'still serving');
});

t.test('request bodies are ignored, never buffered', async (t) => {
  const { port, member } = await setup(t);
  const auth = `Authorization: Bearer ${TOKEN}\r\n`;

  // 256 MiB announced; the answer must come before the body could have been read, and
  // the connection is closed rather than kept to swallow the rest.
  const big = await sendBody(
    t,
    port,
    `POST /mirrors/ap1/members/ap1b/drain HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${256 * 2 ** 20}\r\n\r\n`,
  );
  t.equal(big.status, 200, 'answered while the body was still coming');
  t.ok(big.sent < 256 * 2 ** 20, `answered after ${(big.sent / 2 ** 20).toFixed(1)} MiB of 256 MiB`);
  t.equal(big.closed, true, 'the server closed the connection');
  t.equal((await member('ap1b')).state, 'draining', 'the action was applied');

  const chunked = await sendBody(
    t,
    port,
    `POST /mirrors/ap1/members/ap1b/enable HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n`,
    true,
  );
  t.equal(chunked.status, 200, 'an endless chunked body gets its answer too');
  t.equal(chunked.closed, true);
  t.equal((await member('ap1b')).state, 'backup');

  const denied = await sendBody(
    t,
    port,
    `POST /mirrors/ap1/members/ap1b/disable HTTP/1.1\r\nHost: x\r\nContent-Length: ${256 * 2 ** 20}\r\n\r\n`,
  );
  t.equal(denied.status, 401, 'a big body without the token gets a 401 at once');
  t.equal((await member('ap1b')).state, 'backup');
  t.equal((await httpRequest(port, '/healthz')).status, 200, 'still serving');
});

/** Writes `head`, then body bytes in 1 MiB writes until the answer's status line arrives or 8 s pass. */
function sendBody(
  t: Tap.Test,
  port: number,
  head: string,
  chunked = false,
): Promise<{ status: number; sent: number; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    t.teardown(() => s.destroy());
    const mib = Buffer.alloc(2 ** 20, 0x61);
    const piece = chunked ? Buffer.concat([Buffer.from('100000\r\n'), mib, Buffer.from('\r\n')]) : mib;
    let got = '';
    let sent = 0;
    let status = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer after ${sent} body bytes`));
    }, 8000);
    const pump = (): void => {
      while (status === 0 && !s.destroyed && s.write(piece)) sent += piece.length;
    };
    s.on('connect', () => {
      s.write(head);
      pump();
    });
    s.on('drain', () => {
      sent += piece.length;
      pump();
    });
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m && status === 0) status = Number(m[1]);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (status === 0) reject(new Error(`closed without an answer after ${sent} bytes`));
      else resolve({ status, sent, closed: true });
    });
  });
}

t.test('drain, disable and enable do what they say to sessions and new clients', async (t) => {
  const { post, lb, member } = await setup(t);
  const port = lb.port('ap1');
  const old = await connect(port);
  t.teardown(() => old.destroy());
  t.equal(await readGreeting(old), 'ap1a');

  t.equal((await post('/mirrors/ap1/members/ap1a/drain')).status, 200);
  t.equal((await member('ap1a')).state, 'draining');
  old.write('still here');
  t.equal(
    (await readUpTo(old, 10, 3000)).data.toString(),
    'still here',
    'drain: the open session keeps working',
  );
  const waiting = await connect(port);
  t.teardown(() => waiting.destroy());
  const early = await readUpTo(waiting, 1, 400);
  t.equal(early.data.length, 0, 'drain: a new client is not sent to the draining primary');
  t.equal(early.ended, false, 'drain: it is held, not refused');
  t.equal(lb.daemon.events.list().at(-1)?.kind, 'admin', 'the action is in the events log');

  t.equal((await post('/mirrors/ap1/members/ap1a/enable')).status, 200);
  t.equal(await readGreeting(waiting), 'ap1a', 'enable: the held client goes on');
  t.equal((await member('ap1a')).state, 'primary');

  t.equal((await post('/mirrors/ap1/members/ap1a/disable')).status, 200);
  t.equal((await readUpTo(old, 1, 3000)).ended, true, 'disable: open sessions are cut');
  t.equal((await readUpTo(waiting, 1, 3000)).ended, true);
  t.equal((await member('ap1a')).state, 'disabled');
  t.equal((await post('/mirrors/ap1/members/ap1a/enable')).status, 200);
  t.ok(
    await eventually(async () => (await member('ap1a')).state === 'primary', 5000),
    'enable: back to primary',
  );
});

t.test('GET /status and GET /events', async (t) => {
  const { a, b, lb, port, status } = await setup(t);
  const doc = await status();
  t.match(doc, { version: String, ready: true, eventCount: Number, uptimeSeconds: Number });
  t.ok(Math.abs(Date.parse(doc.time) - Date.now()) < 60_000, 'time is the server clock');
  const m = doc.mirrors[0]!;
  t.match(m, {
    name: 'ap1',
    listen: `127.0.0.1:${lb.port('ap1')}`,
    primary: 'ap1a',
    accepting: true,
    heldClients: 0,
    sessions: 0,
    lastFailover: null,
  });
  t.match(m.members[0], {
    name: 'ap1a',
    state: 'primary',
    reachable: true,
    sessions: 0,
    address: `127.0.0.1:${a.superserverPort}`,
  });
  t.match(m.members[0]!.lastCheck, { ageMs: Number, latencyMs: Number, result: 'primary' });
  t.match(m.members[1], { name: 'ap1b', state: 'backup', reachable: true });

  await a.setRole('backup');
  await b.setRole('primary');
  t.ok(await eventually(async () => (await status()).mirrors[0]!.primary === 'ap1b', 8000));
  const events = JSON.parse((await httpRequest(port, '/events')).body) as TransitionEvent[];
  const failover = events.find((e) => e.kind === 'failover' && e.from === 'ap1a');
  t.match(failover, {
    mirror: 'ap1',
    member: 'ap1b',
    from: 'ap1a',
    to: 'ap1b',
    heldClients: Number,
    cutSessions: Number,
  });
  t.ok(failover && 'detectionMs' in failover, 'detection latency is part of every event');
  t.ok(!Number.isNaN(Date.parse(failover!.time)), 'time is ISO 8601');
  t.match((await status()).mirrors[0]!.lastFailover, { from: 'ap1a', to: 'ap1b' });
  t.equal((await status()).eventCount, lb.daemon.events.count);
});

t.test('off loopback without a token: check and the daemon warn', async (t) => {
  const yaml = (listen: string, token: string) =>
    `mirrors:\n  - name: m\n    listen: 127.0.0.1:0\n    members:\n      - name: m1\n        address: 127.0.0.1:1\n        check: http://127.0.0.1:1/\n      - name: m2\n        address: 127.0.0.1:2\n        check: http://127.0.0.1:2/\nadmin:\n  listen: '${listen}'\n${token}`;
  const warns = (listen: string, token = '') =>
    configWarnings(parseConfig(yaml(listen, token), 'w.yml', {})).filter((w) => w.includes('admin.token'));
  t.equal(warns('0.0.0.0:9090').length, 1, '0.0.0.0 without token');
  t.equal(warns('[::]:9090').length, 1, ':: without token');
  t.equal(warns('10.1.2.3:9090').length, 1, 'a LAN address without token');
  t.same(warns('0.0.0.0:9090', `  token: ${TOKEN}`), [], 'no warning with a token');
  t.same(warns('127.0.0.1:9090'), [], 'no warning on loopback');
  t.same(warns('[::1]:9090'), [], 'no warning on ::1');

  const logs = new LogSink();
  const running = await startBalancer(
    parseConfig(yaml('0.0.0.0:0', 'proxy:\n  hold_timeout: 20ms'), 'w.yml', {}),
    { log: createLogger('info', logs), signals: false },
  );
  t.teardown(() => running.stop({ graceMs: 0 }));
  const warning = logs.records.find((r) => r.level === 40 && String(r.msg).includes('without admin.token'));
  t.ok(warning, 'the daemon logs the warning at start', { messages: logs.messages() });
  const short = logs.records.find((r) => r.level === 40 && String(r.msg).startsWith('proxy.hold_timeout'));
  t.match(short, { source: 'w.yml', line: 14, col: 17 }, 'a warning with a line is logged with it');
});

t.test('a failing handler answers 500 and the server keeps serving', async (t) => {
  const { lb, port } = await setup(t);
  lb.admin.addRoute(/^\/boom$/, {
    GET: () => {
      throw new Error('kaboom');
    },
  });
  lb.admin.addRoute(/^\/later$/, { GET: () => Promise.reject(new Error('late kaboom')) });
  for (const path of ['/boom', '/later']) {
    const res = await httpRequest(port, path);
    t.equal(res.status, 500, path);
    t.same(
      JSON.parse(res.body),
      { error: 'MLB_ERR_INTERNAL', message: 'internal error' },
      'no internals leak',
    );
  }
  t.ok(
    lb.logs.records.some((r) => r.msg === 'admin handler failed' && r.err === 'kaboom'),
    'the failure is logged',
  );
  t.equal((await httpRequest(port, '/healthz')).status, 200);
});

t.test('listen twice is an error, close any number of times is fine', async (t) => {
  const { lb, port } = await setup(t);
  await t.rejects(lb.admin.listen(), { code: 'MLB_ERR_ALREADY_STARTED' }, 'a second listen fails');
  t.equal((await httpRequest(port, '/healthz')).status, 200, 'and the first listener still serves');
  await lb.admin.close();
  await lb.admin.close();
  await t.rejects(httpRequest(port, '/healthz', { timeoutMs: 2000 }), { code: 'ECONNREFUSED' });
});

t.test('CONNECT gets a 405 answer, not a silent close', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const s = net.connect(lb.adminPort(), '127.0.0.1');
  s.on('error', () => undefined);
  s.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
  const answer = await new Promise<string>((resolve) => {
    let buf = '';
    s.on('data', (d: Buffer) => (buf += d.toString()));
    s.on('close', () => resolve(buf));
  });
  t.match(answer, /^HTTP\/1\.1 405 /);
});

t.test('/status says when a member address does not resolve, and the resolved IP otherwise', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const yaml = yamlFor({ ap1: [a] }).replace(
    'members:\n',
    'members:\n      - name: nohost\n        address: b13-nohost.invalid:1972\n        check: http://127.0.0.1:1/s\n      - name: named\n        address: localhost:1972\n        check: http://127.0.0.1:2/s\n',
  );
  const lb = await withBalancer(t, yaml);
  const port = lb.adminPort();
  const members = async () =>
    (JSON.parse((await httpRequest(port, '/status')).body) as StatusDoc).mirrors[0]!.members;
  let doc = await members();
  t.ok(
    await eventually(async () => {
      doc = await members();
      return doc.every((m) => m.resolution.ip !== null || m.resolution.error !== null);
    }, 10_000),
    'every lookup finished',
    { doc },
  );
  const by = (name: string) => doc.find((m) => m.name === name)!;
  t.equal(by('nohost').resolution.ip, null);
  t.match(by('nohost').resolution.error, /^(ENOTFOUND|EAI_AGAIN|EAI_FAIL|ENODATA)$/);
  t.match(by('named').resolution, { ip: /^(127\.0\.0\.1|::1)$/, error: null });
  t.same(by('ap1a').resolution, { ip: '127.0.0.1', error: null }, 'an IP literal needs no lookup');
});

/** The first non-loopback IPv4 address of this machine, if it has one. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

/** Two members and an admin listener on `listen` with the given `admin.token` line (or none). */
async function offLoopback(t: Tap.Test, listen: string, tokenLine = '') {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const yaml = yamlFor({ ap1: [a, b] }, tokenLine).replace(
    'admin:\n  listen: 127.0.0.1:0',
    `admin:\n  listen: '${listen}'`,
  );
  const lb = await withBalancer(t, yaml);
  t.ok(await eventually(() => lb.daemon.mirrorReady('ap1') === true, 5000), 'ap1 has a primary');
  return { lb, port: lb.adminPort() };
}

t.test('no token on a non-loopback listener: actions 403 with the fix named, reads open', async (t) => {
  const outside = outsideAddress();
  const cases: Array<[listen: string, connectTo: string]> = [['0.0.0.0:0', '127.0.0.1']];
  if (outside) cases.push([`${outside}:0`, outside]);
  else t.comment('this machine has no non-loopback IPv4 address: only 0.0.0.0 is tried');
  for (const [listen, host] of cases) {
    const { port } = await offLoopback(t, listen);
    for (const action of ['drain', 'disable', 'enable']) {
      const res = await httpRequest(port, `/mirrors/ap1/members/ap1a/${action}`, { method: 'POST', host });
      t.equal(res.status, 403, `${listen}: POST ${action} is refused`);
      const body = JSON.parse(res.body) as { error: string; message: string };
      t.equal(body.error, 'MLB_ERR_FORBIDDEN');
      t.match(body.message, /set admin\.token/, 'the answer says what to set');
    }
    // A bearer header changes nothing while no token is configured.
    const withHeader = await raw(
      port,
      'POST /mirrors/ap1/members/ap1a/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer anything\r\nContent-Length: 0\r\n\r\n',
      5000,
      host,
    );
    t.equal(withHeader.status, 403, `${listen}: any bearer is refused too`);
    const status = JSON.parse((await httpRequest(port, '/status', { host })).body) as StatusDoc;
    t.equal(status.mirrors[0]!.members.find((m) => m.name === 'ap1a')!.state, 'primary', 'ap1a untouched');
    for (const path of ['/', '/healthz', '/readyz', '/status', '/events', '/metrics'])
      t.equal((await httpRequest(port, path, { host })).status, 200, `${listen}: GET ${path} stays open`);
  }
});

t.test('no token on ::1 (loopback): actions allowed', async (t) => {
  const { port } = await offLoopback(t, '[::1]:0');
  const res = await httpRequest(port, '/mirrors/ap1/members/ap1b/disable', { method: 'POST', host: '::1' });
  t.equal(res.status, 200);
});

t.test('token: ${MIRRORLB_ADMIN_TOKEN:-} is no token when unset and the token when set', async (t) => {
  const saved = process.env.MIRRORLB_ADMIN_TOKEN;
  t.teardown(() => {
    if (saved === undefined) delete process.env.MIRRORLB_ADMIN_TOKEN;
    else process.env.MIRRORLB_ADMIN_TOKEN = saved;
  });
  const line = '  token: ${MIRRORLB_ADMIN_TOKEN:-}';
  const post = (port: number, auth: string) =>
    raw(port, `POST /mirrors/ap1/members/ap1b/drain HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 0\r\n\r\n`);

  delete process.env.MIRRORLB_ADMIN_TOKEN;
  const unset = await offLoopback(t, '0.0.0.0:0', line);
  t.equal(unset.lb.config.admin.token, null, 'unset: no token, not an empty one');
  t.equal((await post(unset.port, '')).status, 403, 'unset: refused off loopback');

  process.env.MIRRORLB_ADMIN_TOKEN = '';
  const empty = await offLoopback(t, '0.0.0.0:0', line);
  t.equal(empty.lb.config.admin.token, null, 'empty (compose passes ${VAR:-} as ""): no token');

  process.env.MIRRORLB_ADMIN_TOKEN = TOKEN;
  const set = await offLoopback(t, '0.0.0.0:0', line);
  t.equal(set.lb.config.admin.token, TOKEN);
  t.equal((await post(set.port, '')).status, 401, 'set: no header is 401');
  t.equal((await post(set.port, `Authorization: Bearer ${TOKEN}\r\n`)).status, 200, 'set: the token works');
});
