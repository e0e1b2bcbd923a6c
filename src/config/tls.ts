/**
 * TLS options of the https:// check URLs: a mirror's `health.tls`, overridden key by key by a
 * member's `tls`. The files are read here, while the config loads, so a reload (SIGHUP)
 * picks up rotated certificates; each problem names the file and why it is unusable.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Checker } from './checker.js';
import { displayPath } from './yaml/positions.js';
import type { CheckTls } from './types.js';

/** A certificate or key file is a few KiB; a bundle of every public root is about 200 KiB. */
const MAX_PEM_BYTES = 1024 * 1024;

export const TLS_FILES = ['ca', 'cert', 'key'] as const;
type TlsFile = (typeof TLS_FILES)[number];

interface ReadFile {
  readonly path: string;
  readonly pem: string;
  /** Where the file was named, for problems found once scopes are merged. */
  readonly ptr: string;
}

/** What one scope (a mirror's health.tls, a member's tls) sets, its files read and sound. */
interface TlsGiven {
  ca?: ReadFile;
  cert?: ReadFile;
  key?: ReadFile;
  servername?: string;
  verify?: boolean;
  /** A file of this scope was reported: no further problems about the set, one cause is enough. */
  failed?: true;
}

/** Each member's TLS options, by mirror then member index (null: none set). */
export type MemberTls = readonly (readonly (CheckTls | null)[])[];

export function checkTls(c: Checker, mirrors: string[], source: string): MemberTls {
  const base = dirname(resolve(source));
  return mirrors.map((m) => {
    const own = readScope(c, `${m}/health/tls`, base);
    return c.list(`${m}/members`).map((member) => {
      const merged = merge(own, readScope(c, `${member}/tls`, base));
      return merged === null ? null : finish(c, merged);
    });
  });
}

function merge(a: TlsGiven | null, b: TlsGiven | null): TlsGiven | null {
  if (a === null) return b;
  if (b === null) return a;
  const merged: TlsGiven = { ...a, ...b };
  if (a.failed || b.failed) merged.failed = true;
  return merged;
}

function readScope(c: Checker, ptr: string, base: string): TlsGiven | null {
  const v = c.get(ptr);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const given: TlsGiven = {};
  for (const name of TLS_FILES) {
    const filePtr = `${ptr}/${name}`;
    const p = c.str(filePtr);
    if (p === undefined) continue;
    const file = readPem(c, filePtr, resolve(base, p), name);
    if (file !== null) given[name] = file;
    else given.failed = true;
  }
  const servername = c.str(`${ptr}/servername`);
  if (servername !== undefined) given.servername = servername;
  const verify = c.get(`${ptr}/verify`);
  if (typeof verify === 'boolean') {
    given.verify = verify;
    if (!verify) {
      c.warn(
        `${ptr}/verify`,
        `${displayPath(`${ptr}/verify`)}: false: the members' certificates are not verified, so anyone ` +
          'on the path can answer for a member (and be taken for its primary)',
      );
    }
  }
  return given;
}

const BLOCK: Record<TlsFile, RegExp> = {
  ca: /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g,
  cert: /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g,
  key: /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[^-]+-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/g,
};
const EXPECTED: Record<TlsFile, string> = {
  ca: 'a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)',
  cert: 'a PEM certificate (-----BEGIN CERTIFICATE-----)',
  key: 'a PEM private key (-----BEGIN PRIVATE KEY-----)',
};

/** The file's text when it is readable PEM of the right sort, its certificates in date; else a problem. */
function readPem(c: Checker, ptr: string, path: string, name: TlsFile): ReadFile | null {
  const fail = (why: string): null => {
    c.report(ptr, `${path}: ${why}`);
    return null;
  };
  let text: string;
  try {
    if (statSync(path).size > MAX_PEM_BYTES) return fail(`larger than 1 MiB: not ${EXPECTED[name]}`);
    text = readFileSync(path, 'latin1');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return fail(`cannot be read (${err.code ?? 'error'}: ${errnoText(err)})`);
  }
  const blocks = text.match(BLOCK[name]) ?? [];
  if (blocks.length === 0) return fail(`not PEM: expected ${EXPECTED[name]}`);
  if (name === 'key') {
    if (/ENCRYPTED/.test(blocks[0]!)) return fail('the key is encrypted; give an unencrypted key file');
    try {
      createPrivateKey(blocks[0]!);
    } catch (e) {
      return fail(`not a usable private key (${(e as Error).message})`);
    }
    return { path, pem: text, ptr };
  }
  const certs: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      certs.push(new X509Certificate(b));
    } catch (e) {
      return fail(`holds a certificate that does not parse (${(e as Error).message})`);
    }
  }
  // A bundle may keep an old root beside the current one; a bundle with none in date, or a
  // client certificate out of date, can only fail every handshake.
  const now = Date.now();
  const inDate = certs.filter((x) => Date.parse(x.validFrom) <= now && now <= Date.parse(x.validTo));
  const first = name === 'cert' ? certs[0]! : inDate.length === 0 ? certs[0]! : null;
  if (first !== null && !inDate.includes(first)) {
    const what = name === 'cert' ? 'the certificate' : 'every certificate of the bundle';
    return Date.parse(first.validTo) < now
      ? fail(`${what} expired: not valid after ${iso(first.validTo)} (notAfter ${first.validTo})`)
      : fail(`${what} is not valid yet: not before ${iso(first.validFrom)} (notBefore ${first.validFrom})`);
  }
  return { path, pem: text, ptr };
}

function iso(openssl: string): string {
  return new Date(Date.parse(openssl)).toISOString();
}

function errnoText(err: NodeJS.ErrnoException): string {
  // Node's message is "ENOENT: no such file or directory, open '/x'": keep the reason only.
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(err.message);
  return m ? m[1]! : err.message;
}

/** The merged options as the prober takes them; a certificate and its key must belong together. */
function finish(c: Checker, g: TlsGiven): CheckTls | null {
  if (Object.keys(g).length === 0 || g.failed) return null;
  if ((g.cert === undefined) !== (g.key === undefined)) {
    const [has, lacks] = g.cert !== undefined ? ['cert', 'key'] : ['key', 'cert'];
    const at = (g.cert ?? g.key)!.ptr;
    c.report(at, `a client ${has} needs its ${lacks} too (tls.${lacks})`);
    return null;
  }
  if (g.cert !== undefined && g.key !== undefined && !matches(g.cert.pem, g.key.pem)) {
    c.report(g.key.ptr, `${g.key.path}: the key does not match the certificate ${g.cert.path}`);
    return null;
  }
  return {
    ca: g.ca?.pem ?? null,
    cert: g.cert?.pem ?? null,
    key: g.key?.pem ?? null,
    servername: g.servername ?? null,
    verify: g.verify ?? true,
    files: { ca: g.ca?.path ?? null, cert: g.cert?.path ?? null, key: g.key?.path ?? null },
  };
}

function matches(certPem: string, keyPem: string): boolean {
  try {
    const key: KeyObject = createPrivateKey(keyPem);
    return new X509Certificate(certPem).checkPrivateKey(key);
  } catch {
    return false;
  }
}
