import { isIPv4, isIPv6 } from 'node:net';
import { ConfigValueError } from './errors.js';
import type { HostPort } from './types.js';

const HOST_NAME = /^[A-Za-z0-9_.-]+$/;

/** Parses `host:port` or `[ipv6]:port` (port 1..65535); throws ConfigValueError saying what is wrong. */
export function parseHostPort(s: string): HostPort {
  if (typeof s !== 'string') throw new ConfigValueError(`host:port must be a string, got ${typeof s}`);
  const { host, port } = s.startsWith('[') ? splitBracketed(s) : splitPlain(s);
  return { host, port: parsePort(port) };
}

function splitBracketed(s: string): { host: string; port: string } {
  const close = s.indexOf(']');
  if (close < 0) throw new ConfigValueError(`"${s}" has no "]" closing the IPv6 address`);
  const host = s.slice(1, close);
  const rest = s.slice(close + 1);
  if (!rest.startsWith(':')) throw new ConfigValueError(`"${s}" has no ":port" after the "]"`);
  const zoneless = host.split('%')[0] ?? '';
  if (!isIPv6(zoneless)) throw new ConfigValueError(`"[${host}]" is not an IPv6 address`);
  return { host, port: rest.slice(1) };
}

function splitPlain(s: string): { host: string; port: string } {
  const colon = s.lastIndexOf(':');
  if (colon < 0)
    throw new ConfigValueError(`"${s}" has no port; write host:port, e.g. ${s || '0.0.0.0'}:1972`);
  const host = s.slice(0, colon);
  const port = s.slice(colon + 1);
  if (host === '') {
    throw new ConfigValueError(
      `"${s}" has an empty host; write e.g. db1${s} (or 0.0.0.0${s} to listen on every address)`,
    );
  }
  if (host.includes(':')) {
    throw new ConfigValueError(`"${s}": an IPv6 address must be in brackets, e.g. [::1]:1972`);
  }
  if (!HOST_NAME.test(host)) throw new ConfigValueError(`"${host}" is not a valid host name or address`);
  if (/^[\d.]+$/.test(host) && !isIPv4(host))
    throw new ConfigValueError(`"${host}" is not a valid IPv4 address`);
  return { host, port };
}

/**
 * Like parseHostPort, for an address mirrorlb listens on: port 0 is also accepted and
 * means "any free port" (tests and embedded use read the bound port back).
 */
export function parseListenAddress(s: string): HostPort {
  if (typeof s !== 'string') throw new ConfigValueError(`host:port must be a string, got ${typeof s}`);
  const { host, port } = s.startsWith('[') ? splitBracketed(s) : splitPlain(s);
  return { host, port: parsePort(port, 0) };
}

function parsePort(p: string, min = 1): number {
  if (!/^\d+$/.test(p)) throw new ConfigValueError(`port "${p}" is not a number`);
  const n = Number(p);
  if (n < min || n > 65535) throw new ConfigValueError(`port ${p} is out of range ${min}..65535`);
  return n;
}
