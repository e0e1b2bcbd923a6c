/** Codes of TLS failures: OpenSSL's certificate verdicts, Node's TLS and SSL errors. */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|EPROTO$)/;

function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : null;
}

/**
 * The stable code a failed status request is reported with: the errno (ECONNREFUSED,
 * ECONNRESET, ENOTFOUND, ...) when there is one, else an `MLB_ERR_` code. Every TLS failure
 * is one code, MLB_ERR_TLS, so a member's result and its metrics stay a short list.
 */
export function probeErrorCode(err: unknown): string {
  const code = codeOf(err);
  if (code === null) return err instanceof TypeError ? 'MLB_ERR_BAD_URL' : 'MLB_ERR_PROBE_FAILED';
  return memberErrorCode(code);
}

/**
 * The code one URL's failure is shown with (its UrlAnswer): as probeErrorCode, except that a
 * TLS failure keeps its own OpenSSL or Node code (UNABLE_TO_VERIFY_LEAF_SIGNATURE,
 * ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED, ...): that is
 * what says which of the CA, the client certificate or the server name to fix.
 */
export function urlErrorCode(err: unknown): string {
  const code = codeOf(err);
  return code !== null && TLS_CODE.test(code) ? code : probeErrorCode(err);
}

/** The member-level code of a URL's code (see urlErrorCode). */
export function memberErrorCode(urlCode: string): string {
  // Node's HTTP parser: the peer answered something that is not HTTP.
  if (urlCode.startsWith('HPE_')) return 'MLB_ERR_BAD_RESPONSE';
  if (TLS_CODE.test(urlCode)) return 'MLB_ERR_TLS';
  if (urlCode === 'ERR_INVALID_URL') return 'MLB_ERR_BAD_URL';
  return urlCode;
}
