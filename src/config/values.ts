/** Parsers for the value kinds the schema can only pattern-match, and their specific explanations. */
import { parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { segments } from './positions.js';

/** The URL normalised (so duplicates are found), or a ConfigValueError saying why it is unusable. */
export function parseCheckUrl(s: string): string {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new ConfigValueError(`${JSON.stringify(s)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigValueError(`${JSON.stringify(s)} is not an http:// or https:// URL`);
  }
  if (url.hostname === '') throw new ConfigValueError(`${JSON.stringify(s)} has no host`);
  return url.href;
}

const PARSERS: Record<string, (s: string) => unknown> = {
  listen: parseListenAddress,
  address: parseHostPort,
  check: parseCheckUrl,
  interval: parseDuration,
  fast_interval: parseDuration,
  fast_window: parseDuration,
  timeout: parseDuration,
  connect_timeout: parseDuration,
  hold_timeout: parseDuration,
  drain_timeout: parseDuration,
  grace: parseDuration,
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
