import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ErrorCode } from '../errors.js';

/**
 * The status page as served: one self-contained HTML file shipped in the package
 * (package.json "files" lists src/admin/page), read once from disk, with a Content Security
 * Policy that allows exactly its own inline script and style and requests to its own origin.
 * The same relative URL works from src/admin/ (tests) and dist/admin/ (the built package).
 */
export const PAGE_URL = new URL('../../src/admin/page/index.html', import.meta.url);

export interface Page {
  readonly html: string;
  readonly csp: string;
}

export class PageError extends Error {
  readonly code: ErrorCode = 'MLB_ERR_PAGE_MISSING';
}

/** Builds the CSP for `html`: hashes of each inline <script> and <style>, nothing external. */
export function pageFromHtml(html: string): Page {
  const hashes = (tag: string): string[] =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map(
      (m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`,
    );
  const csp = [
    "default-src 'none'",
    `script-src ${hashes('script').join(' ') || "'none'"}`,
    `style-src ${hashes('style').join(' ') || "'none'"}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

let cached: Promise<Page> | null = null;

/** The page, read on first use; a failed read is retried on the next request. */
export function loadPage(url: URL = PAGE_URL): Promise<Page> {
  if (url !== PAGE_URL) return readPage(url);
  cached ??= readPage(url).catch((err: unknown) => {
    cached = null;
    throw err;
  });
  return cached;
}

async function readPage(url: URL): Promise<Page> {
  try {
    return pageFromHtml(await readFile(url, 'utf8'));
  } catch (err) {
    throw new PageError(`status page not found at ${url.pathname}: ${(err as Error).message}`);
  }
}
