/**
 * Every `MLB_ERR_…` code mirrorlb reports, in one table: what it means, the exit code a
 * command ends with when it is the reason (null: never ends a process), and the HTTP
 * status the admin API answers it with (null: never an HTTP answer). Codes are stable:
 * logs, metrics labels, `/status` and scripts match on them, so a code is never renamed,
 * only added. test/errors.test.ts fails on an `MLB_ERR_` literal in src/ that is not here.
 */

export interface ErrorSpec {
  readonly meaning: string;
  readonly exit: number | null;
  readonly http: number | null;
}

/** Exit codes of the CLI, for every command. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export const ERRORS = {
  // Command line and configuration.
  MLB_ERR_USAGE: { meaning: 'bad command-line arguments', exit: EXIT.usage, http: null },
  MLB_ERR_CONFIG: {
    meaning: 'the config has problems (one FILE:LINE:COL: message each)',
    exit: EXIT.failed,
    http: null,
  },
  MLB_ERR_CONFIG_VALUE: {
    meaning: 'one value of the config is unusable (becomes a positioned MLB_ERR_CONFIG problem)',
    exit: EXIT.failed,
    http: null,
  },
  MLB_ERR_ALREADY_STARTED: { meaning: 'start() or listen() called twice', exit: EXIT.failed, http: null },
  MLB_ERR_STATUS_FETCH: {
    meaning: '`mirrorlb status` could not read a status document from the admin API',
    exit: EXIT.failed,
    http: null,
  },

  // Admin HTTP API.
  MLB_ERR_BAD_REQUEST: { meaning: 'malformed path escapes or unparsable HTTP', exit: null, http: 400 },
  MLB_ERR_UNAUTHORIZED: { meaning: 'missing or wrong bearer token', exit: null, http: 401 },
  MLB_ERR_FORBIDDEN: {
    meaning: 'a maintenance action on a non-loopback admin listener with no admin.token set',
    exit: null,
    http: 403,
  },
  MLB_ERR_NOT_FOUND: { meaning: 'no such path, mirror or member', exit: null, http: 404 },
  MLB_ERR_METHOD: { meaning: 'method not allowed on this path', exit: null, http: 405 },
  MLB_ERR_INTERNAL: { meaning: 'a handler failed (logged); the server keeps serving', exit: null, http: 500 },
  MLB_ERR_PAGE_MISSING: {
    meaning: 'the status page file is missing from the package',
    exit: null,
    http: 500,
  },

  // Health checks (the result code of a failed probe, in logs and /status).
  MLB_ERR_PROBE_FAILED: { meaning: 'a status request failed without an errno', exit: null, http: null },
  MLB_ERR_PROBE_INTERNAL: {
    meaning: 'the prober itself failed (a bug; counted as a failed check)',
    exit: null,
    http: null,
  },
  MLB_ERR_PROBE: { meaning: 'a probe rejected (a bug; counted as a failed check)', exit: null, http: null },
  MLB_ERR_PROBER_CLOSED: { meaning: 'the prober was closed while a request ran', exit: null, http: null },
  MLB_ERR_BAD_URL: { meaning: 'a check URL the HTTP client cannot use', exit: null, http: null },
  MLB_ERR_BAD_RESPONSE: {
    meaning: 'the status page answered something that is not HTTP',
    exit: null,
    http: null,
  },
  MLB_ERR_TLS: { meaning: 'the TLS handshake with the status page failed', exit: null, http: null },
  MLB_ERR_INCOMPLETE_BODY: { meaning: 'the status body ended before its length', exit: null, http: null },
  MLB_ERR_NO_CHECK_URL: {
    meaning: 'a member without check URLs (a bug: the config requires one)',
    exit: null,
    http: null,
  },

  // Proxy (the reason a backend connect failed).
  MLB_ERR_CONNECT: { meaning: 'a backend connect failed without an errno', exit: null, http: null },
  MLB_ERR_CONNECT_TIMEOUT: {
    meaning: 'a backend connect took longer than proxy.connect_timeout',
    exit: null,
    http: null,
  },
  MLB_ERR_BACKEND_CLOSED: {
    meaning: 'the member closed a session before sending a byte; its client is retried elsewhere',
    exit: null,
    http: null,
  },

  // The simulated member (`mirrorlb sim`).
  MLB_ERR_SIM_OPTIONS: { meaning: 'bad options for a simulated member', exit: EXIT.usage, http: null },
  MLB_ERR_SIM_STATE: { meaning: 'a simulated member started twice', exit: EXIT.failed, http: null },
  MLB_ERR_SIM_START: {
    meaning: 'a simulated member could not bind its ports',
    exit: EXIT.failed,
    http: null,
  },
  MLB_ERR_SIM_ROLE: { meaning: 'an unknown role for a simulated member', exit: null, http: 400 },
  MLB_ERR_SIM_STATUS_MODE: {
    meaning: 'an unknown status mode for a simulated member',
    exit: null,
    http: 400,
  },
  MLB_ERR_SIM_BODY: { meaning: 'a control request body over 1 KiB', exit: null, http: 413 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The HTTP status the admin API answers a code with (500 for a code that has none). */
export function httpStatusOf(code: ErrorCode): number {
  return ERRORS[code].http ?? 500;
}

/** The exit code a command ends with for a code (1 for a code that has none). */
export function exitCodeOf(code: ErrorCode): number {
  return ERRORS[code].exit ?? EXIT.failed;
}

/** An error carrying a catalogued code. */
export class MlbError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MlbError';
  }
}
