/**
 * TLS options of the check URLs (`health.tls` of a mirror, `tls` of a member): files read
 * at load, each problem naming the file and why. The certificates are made here with the
 * openssl command line: a CA, a server and a client certificate, one expired, one not yet
 * valid, one from another key.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../src/config/errors.js';
import { loadWarnings, parseConfig } from '../src/config/load.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

function opensslMissing(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'the openssl command is not installed (apt-get install openssl)';
  }
}

const missing = opensslMissing();
if (missing !== null) {
  if (STRICT) t.fail(`${missing} and MIRRORLB_TEST_STRICT=1`);
  else t.skip(missing);
} else {
  run();
}

/** Makes the PKI in `dir`; returns the file paths. */
function makePki(dir: string): Record<string, string> {
  const f = (n: string): string => join(dir, n);
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const ecKey = (out: string): void =>
    ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out);
  ecKey('ca.key');
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=test CA', '-days', '2', '-out', 'ca.pem');
  // `openssl ca` is what sets arbitrary validity dates in OpenSSL 3.0 (-startdate/-enddate).
  writeFileSync(
    f('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir',
      'serial = $dir/serial',
      'default_md = sha256',
      'policy = any',
      'copy_extensions = copy',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  writeFileSync(f('index.txt'), '');
  writeFileSync(f('serial'), '01\n');
  const issue = (name: string, start: string, end: string): void => {
    ecKey(`${name}.key`);
    ssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    ssl(
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-cert',
      'ca.pem',
      '-keyfile',
      'ca.key',
      '-notext',
      '-startdate',
      start,
      '-enddate',
      end,
      '-in',
      `${name}.csr`,
      '-out',
      `${name}.pem`,
    );
  };
  const soon = new Date(Date.now() + 86_400_000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  issue('client', '20200101000000Z', soon);
  issue('expired', '20200101000000Z', '20200102000000Z');
  issue('future', '20990101000000Z', '20991231000000Z');
  ecKey('other.key');
  writeFileSync(f('garbage.pem'), 'this is not a certificate\n');
  return Object.fromEntries(
    [
      'ca.pem',
      'client.pem',
      'client.key',
      'expired.pem',
      'expired.key',
      'future.pem',
      'future.key',
      'other.key',
      'garbage.pem',
    ].map((n) => [n, f(n)]),
  );
}

/** One mirror of two https members; `mirrorTls` under its health, `memberTls` on the second member. */
function file(mirrorTls: string[], memberTls: string[] = []): string {
  return [
    'mirrors:',
    '  - name: m1',
    '    kind: patroni',
    '    listen: 127.0.0.1:0',
    ...(mirrorTls.length > 0 ? ['    health:', '      tls:', ...mirrorTls.map((l) => `        ${l}`)] : []),
    '    members:',
    '      - name: a',
    '        address: 10.0.0.1:5432',
    '        check: https://10.0.0.1:8008/primary',
    '      - name: b',
    '        address: 10.0.0.2:5432',
    '        check: https://10.0.0.2:8008/primary',
    ...(memberTls.length > 0 ? ['        tls:', ...memberTls.map((l) => `          ${l}`)] : []),
    '',
  ].join('\n');
}

function problems(text: string, source = 'f.yml'): string[] {
  try {
    parseConfig(text, source, {});
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
}

function run(): void {
  t.test('a valid CA, client certificate and key load into each member, files read', async (t) => {
    const pki = makePki(t.testdir());
    const config = parseConfig(
      file(
        [
          `ca: ${pki['ca.pem']}`,
          `cert: ${pki['client.pem']}`,
          `key: ${pki['client.key']}`,
          'servername: pg.example',
        ],
        ['servername: pg-b.example'],
      ),
      'f.yml',
      {},
    );
    const [a, b] = config.mirrors[0]!.members;
    t.match(a!.tls, {
      ca: /^-----BEGIN CERTIFICATE-----/,
      cert: /^-----BEGIN CERTIFICATE-----/,
      key: /-----BEGIN PRIVATE KEY-----/,
      servername: 'pg.example',
      verify: true,
      files: { ca: pki['ca.pem'], cert: pki['client.pem'], key: pki['client.key'] },
    });
    t.equal(b!.tls?.servername, 'pg-b.example', "the member's key over the mirror's");
    t.equal(b!.tls?.cert, a!.tls?.cert, 'the rest inherited');
    t.ok(Object.isFrozen(a!.tls), 'frozen with the config');
    t.equal(parseConfig(file([]), 'f.yml', {}).mirrors[0]!.members[0]!.tls, null, 'none set: null');
  });

  t.test('relative paths are relative to the config file', async (t) => {
    const dir = t.testdir();
    makePki(dir);
    const tls = parseConfig(file(['ca: ca.pem']), join(dir, 'mirrorlb.yml'), {}).mirrors[0]!.members[0]!.tls;
    t.equal(tls?.files.ca, join(dir, 'ca.pem'));
  });

  t.test('each unusable file is named with the reason', async (t) => {
    const dir = t.testdir();
    const pki = makePki(dir);
    const missingFile = join(dir, 'nope.pem');
    t.strictSame(problems(file([`ca: ${missingFile}`])), [
      `7:13: mirrors[0].health.tls.ca: ${missingFile}: cannot be read (ENOENT: no such file or directory)`,
    ]);
    t.strictSame(problems(file([`ca: ${dir}`])), [
      `7:13: mirrors[0].health.tls.ca: ${dir}: cannot be read (EISDIR: illegal operation on a directory)`,
    ]);
    t.strictSame(problems(file([`ca: ${pki['garbage.pem']}`])), [
      `7:13: mirrors[0].health.tls.ca: ${pki['garbage.pem']}: not PEM: expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)`,
    ]);
    t.strictSame(problems(file([`cert: ${pki['client.pem']}`, `key: ${pki['client.pem']}`])), [
      `8:14: mirrors[0].health.tls.key: ${pki['client.pem']}: not PEM: expected a PEM private key (-----BEGIN PRIVATE KEY-----)`,
    ]);
    t.strictSame(problems(file([`cert: ${pki['client.pem']}`, `key: ${pki['other.key']}`])), [
      `8:14: mirrors[0].health.tls.key: ${pki['other.key']}: the key does not match the certificate ${pki['client.pem']}`,
    ]);
    t.strictSame(problems(file([`cert: ${pki['expired.pem']}`, `key: ${pki['expired.key']}`])), [
      `7:15: mirrors[0].health.tls.cert: ${pki['expired.pem']}: the certificate expired: not valid after 2020-01-02T00:00:00.000Z (notAfter Jan  2 00:00:00 2020 GMT)`,
    ]);
    t.strictSame(problems(file([`cert: ${pki['future.pem']}`, `key: ${pki['future.key']}`])), [
      `7:15: mirrors[0].health.tls.cert: ${pki['future.pem']}: the certificate is not valid yet: not before 2099-01-01T00:00:00.000Z (notBefore Jan  1 00:00:00 2099 GMT)`,
    ]);
    t.strictSame(problems(file([`ca: ${pki['expired.pem']}`])), [
      `7:13: mirrors[0].health.tls.ca: ${pki['expired.pem']}: every certificate of the bundle expired: not valid after 2020-01-02T00:00:00.000Z (notAfter Jan  2 00:00:00 2020 GMT)`,
    ]);
    t.strictSame(problems(file([`cert: ${pki['client.pem']}`])), [
      '7:15: mirrors[0].health.tls.cert: a client cert needs its key too (tls.key)',
    ]);
    // A member's key over the mirror's certificate is checked as the pair it makes.
    t.strictSame(
      problems(
        file([`cert: ${pki['client.pem']}`, `key: ${pki['client.key']}`], [`key: ${pki['other.key']}`]),
      ),
      [
        `17:16: mirrors[0].members[1].tls.key: ${pki['other.key']}: the key does not match the certificate ${pki['client.pem']}`,
      ],
    );
    t.match(problems(file(['verify: maybe', 'servername: "a b"'])), [
      /^7:17: mirrors\[0\]\.health\.tls\.verify: must be true or false, got "maybe"$/,
      /^8:21: mirrors\[0\]\.health\.tls\.servername: must be a host name, got "a b"$/,
    ]);
  });

  t.test('verify: false loads, with a warning at its line', async (t) => {
    const config = parseConfig(file(['verify: false']), 'f.yml', {});
    t.equal(config.mirrors[0]!.members[0]!.tls?.verify, false);
    t.strictSame(
      loadWarnings(config).map((w) => `${w.line}:${w.col}: ${w.message}`),
      [
        "7:17: mirrors[0].health.tls.verify: false: the members' certificates are not verified, so anyone " +
          'on the path can answer for a member (and be taken for its primary)',
      ],
    );
  });
}
