import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { VERSION } from '../version.js';
import { probeErrorCode } from './probe-error.js';
import type { RoundEnd } from './round-end.js';

const REQUEST_HEADERS = { 'user-agent': `mirrorlb/${VERSION}`, accept: '*/*' };

/** A check URL ready to request, or why it cannot be (reported by every probe of it). */
export type PreparedUrl =
  | { readonly mod: typeof http | typeof https; readonly options: http.RequestOptions }
  | { readonly error: Error };

/** The agents a prepared URL may use: the scheme picks one. */
export interface UrlAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
}

/** Parses one check URL once, into the options every request of it reuses. */
export function prepareUrl(url: string, agents: UrlAgents): PreparedUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    return { error: err as Error };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return { error: new TypeError(`only http and https check URLs are supported, not ${u.protocol}`) };
  }
  const tls = u.protocol === 'https:';
  // Only the fields node:http reads (not href, hash, search, pathname): it copies the
  // options object three times per request, field by field.
  const { protocol, hostname, port, path, auth } = urlToHttpOptions(u);
  const options: http.RequestOptions = {
    protocol,
    hostname,
    ...(port === undefined ? {} : { port }),
    path,
    ...(auth === undefined ? {} : { auth }),
    method: 'GET',
    headers: REQUEST_HEADERS,
    agent: tls ? agents.https : agents.http,
  };
  return { mod: tls ? https : http, options };
}

/** A status request's answer, at its headers. */
export interface StatusAnswer {
  readonly status: number;
  /** The declared Content-Length, NaN when none. */
  readonly declaredLength: number;
  readonly body: http.IncomingMessage;
}

const ignore = (): void => {};

/**
 * One GET with node:http(s), resolved at the headers. node:http itself follows no redirect
 * (a 3xx is an answer like any other) and decompresses nothing (no Accept-Encoding is sent).
 * The round's end cancels it before or after the headers. Rejects with the socket's, TLS's
 * or parser's error (its `code` is what probeErrorCode() reads), or the URL's own error (a
 * TypeError for one that is not http(s)). Plain node:http rather than a fetch API: a probe
 * runs every interval for every member, and node-fetch's Request/Response/Headers and stream
 * wrappers were a quarter of the daemon's CPU at rest and 40% of each probe's allocation.
 */
export function request(url: PreparedUrl, end: RoundEnd): Promise<StatusAnswer> {
  return new Promise((resolve, reject) => {
    if ('error' in url) return reject(url.error);
    const req = url.mod.request(url.options);
    // An answer read to its end has already marked its request destroyed (its socket is
    // back in the pool), so this only ever cuts one still running.
    end.on(() => {
      if (!req.destroyed) req.destroy(roundOver());
    });
    // `on`, not `once`: an abort or a broken socket after the headers errors the request
    // again, and that second error must not go unhandled (reject is a no-op by then).
    req.on('error', reject);
    req.once('response', (res) => {
      // An abort after the headers destroys the body with an error; the body scan sees 'close'.
      res.on('error', ignore);
      const declared = res.headers['content-length'];
      resolve({
        status: res.statusCode ?? 0,
        declaredLength: declared === undefined ? NaN : Number(declared),
        body: res,
      });
    });
    req.end();
  });
}

/**
 * request(), once more after an ECONNRESET before any answer while `mayRetry()`: a kept-alive
 * socket that the server closed just as it was reused fails that way (a race inherent to
 * HTTP keep-alive); the retry, which finds that socket gone from the pool, tells it from a
 * status page that really resets.
 */
export async function requestWithRetry(
  url: PreparedUrl,
  end: RoundEnd,
  mayRetry: () => boolean,
): Promise<StatusAnswer> {
  try {
    return await request(url, end);
  } catch (err) {
    if (probeErrorCode(err) !== 'ECONNRESET' || !mayRetry()) throw err;
    return await request(url, end);
  }
}

/** What a request cut by the round's end fails with (never reported: the round is over). */
function roundOver(): Error {
  return Object.assign(new Error('probe round over'), { code: 'ABORT_ERR' });
}
