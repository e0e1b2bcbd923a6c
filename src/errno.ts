import { getSystemErrorName } from 'node:util';

/**
 * The errno name (`ECONNREFUSED`, ...) of a libuv status, a negative errno as the raw
 * handles report it. `fallback` is for a status that is not one (zero or positive, which
 * getSystemErrorName refuses); by default `E` and the number.
 */
export function errnoName(status: number, fallback = `E${Math.abs(status)}`): string {
  if (!Number.isInteger(status) || status >= 0) return fallback;
  return getSystemErrorName(status);
}
