/** Check URLs: what makes one usable, and what a message may show of it. */
import { ConfigValueError } from './errors.js';

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
