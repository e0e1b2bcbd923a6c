import { getSystemErrorName } from 'node:util';

/**
 * The errno name of a libuv status (a negative errno): `ECONNREFUSED`, ... One mapping for
 * the data path and the health checks, so a metric label or log code never depends on which
 * path saw the error. An unknown status becomes `E<number>`.
 */
export function errnoName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `E${-status}`;
  }
}
