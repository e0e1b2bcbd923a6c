import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Why the openssl command cannot make certificates here (null: it can). */
export function opensslMissing(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return null;
  } catch (err) {
    return `the openssl command is not installed (${(err as NodeJS.ErrnoException).code ?? 'failed'}; apt-get install openssl)`;
  }
}

/** The files of a test PKI (paths in `dir`). */
export interface PkiFiles {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A leaf to sign: its file name (and CN) and its X.509 extensions (openssl -extfile lines). */
export interface Leaf {
  readonly name: string;
  readonly ext: string;
}

/**
 * A CA, valid two days, and a server and a client certificate it signs, made with the
 * openssl command line in `dir` (P-256 keys: quick to make).
 */
export function makePki(dir: string, caName: string, server: Leaf, client: Leaf): PkiFiles {
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...key,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    `/CN=${caName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  for (const { name, ext } of [server, client]) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', '-new', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  }
  const f = (name: string): string => join(dir, name);
  return {
    ca: f('ca.crt'),
    serverCert: f(`${server.name}.crt`),
    serverKey: f(`${server.name}.key`),
    clientCert: f(`${client.name}.crt`),
    clientKey: f(`${client.name}.key`),
  };
}
