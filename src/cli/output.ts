/**
 * A reader that goes away (`mirrorlb check -c f.yml | head -1`) is a normal end, not a
 * crash: EPIPE on stdout or stderr is swallowed, later writes go nowhere, and the command
 * finishes with its own exit code. The daemon's logs go through pino, which drops its
 * output on EPIPE the same way, so a closed log pipe never stops the balancer.
 */
export function ignoreClosedOutput(...streams: NodeJS.WritableStream[]): void {
  for (const s of streams) {
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
      throw err;
    });
  }
}
