/** Parsers for the value kinds the schema can only pattern-match, and their specific explanations. */
import { HEALTH_DURATIONS, PROXY_DURATIONS, SHUTDOWN_DURATIONS, SHUTDOWN_OFFABLE } from './defaults.js';
import { parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { segments } from './yaml/positions.js';

/**
 * The URL normalised (so duplicates are found), or a ConfigValueError saying why it is
 * unusable. Credentials (`user:password@`) are refused: the prober sends none, and check
 * URLs are shown on the unauthenticated /status. No message ever repeats them.
 */
export function parseCheckUrl(s: string): string {
  const shown = JSON.stringify(redactUserinfo(s));
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new ConfigValueError(`${shown} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigValueError(`${shown} is not an http:// or https:// URL`);
  }
  if (url.hostname === '') throw new ConfigValueError(`${shown} has no host`);
  if (url.username !== '' || url.password !== '') {
    throw new ConfigValueError(
      `${shown}: credentials in a check URL are not supported (the status page is read without ` +
        'authentication, and /status shows check URLs to anyone); give the status page a path that needs no login',
    );
  }
  return url.href;
}

/** `http://user:pw@host/x` → `http://***@host/x`: what a message may show of a URL. */
export function redactUserinfo(s: string): string {
  return s.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1***@');
}

const PARSERS: Record<string, (s: string) => unknown> = {
  listen: parseListenAddress,
  address: parseHostPort,
  check: parseCheckUrl,
  ...Object.fromEntries(
    [...HEALTH_DURATIONS, ...PROXY_DURATIONS, ...SHUTDOWN_DURATIONS, ...SHUTDOWN_OFFABLE].map((k) => [
      k,
      parseDuration,
    ]),
  ),
};

/**
 * Why a string at ptr failed its schema pattern, in the words of the parser for that key
 * (`port 70000 is out of range`), or null to fall back to the schema's errorMessage.
 */
export function explainBadValue(ptr: string, value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const key = segments(ptr)
    .filter((s) => !/^\d+$/.test(s))
    .pop();
  const parse = key === undefined ? undefined : PARSERS[key];
  if (parse === undefined) return null;
  try {
    parse(value);
    return null;
  } catch (e) {
    return e instanceof ConfigValueError ? e.message : null;
  }
}
