// The failover part's clients: a few clients that each open a connection every few
// milliseconds, read the member's greeting line and close, recording every attempt; and
// "holders", long sessions opened before the event whose end the bench times.
import net from 'node:net';
import { now, sleep } from './util.js';

/** @typedef {{ c: number, t0: number, t1: number, member: string | null, outcome: string }} Attempt */

/**
 * One connect-and-greet attempt. Resolves (never rejects) with
 * { c, t0, t1, member, outcome } where outcome is ok | refused | reset | closed | timeout | <errno>.
 */
/**
 * @param {string} host
 * @param {number} port
 * @param {number} timeoutMs
 * @param {number} c the client's index
 * @returns {Promise<Attempt>}
 */
function attempt(host, port, timeoutMs, c) {
  return new Promise((resolve) => {
    const t0 = now();
    const s = net.connect({ host, port, noDelay: true });
    let buf = '';
    let settled = false;
    /** @type {(outcome: string, member?: string | null) => void} */
    const finish = (outcome, member = null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A reset rather than a FIN: the client side keeps no TIME_WAIT for thousands of attempts.
      if (typeof s.resetAndDestroy === 'function' && !s.destroyed && s.readyState === 'open')
        s.resetAndDestroy();
      else s.destroy();
      resolve({ c, t0, t1: now(), member, outcome });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish('ok', buf.slice(0, nl));
    });
    s.on('end', () => finish('closed'));
    s.on('close', () => finish('closed'));
    s.on('error', (/** @type {NodeJS.ErrnoException} */ err) =>
      finish(
        err.code === 'ECONNREFUSED'
          ? 'refused'
          : err.code === 'ECONNRESET' || err.code === 'EPIPE'
            ? 'reset'
            : (err.code ?? 'error'),
      ),
    );
  });
}

/**
 * Starts `clients` clients against host:port, each starting a connection every `pauseMs`
 * whether or not its previous one has answered (open loop: a balancer that makes clients
 * wait does not thereby get fewer attempts to fail). `onRecord` sees each record as it
 * completes; stop() resolves with every record once the attempts in flight have ended.
 * @param {{ host?: string, port: number, clients?: number, pauseMs?: number, timeoutMs?: number, onRecord?: (r: Attempt) => void }} opts
 */
export function startFleet({
  host = '127.0.0.1',
  port,
  clients = 4,
  pauseMs = 8,
  timeoutMs = 2000,
  onRecord,
}) {
  /** @type {Attempt[]} */
  const records = [];
  /** @type {Set<Promise<void>>} */
  const inflight = new Set();
  let running = true;
  /** @param {number} c */
  const loop = async (c) => {
    // Spread the clients so their connects do not line up.
    let next = now() + (pauseMs * c) / clients;
    while (running) {
      const wait = next - now();
      if (wait > 0) await sleep(wait);
      if (!running) break;
      const p = attempt(host, port, timeoutMs, c).then((r) => {
        inflight.delete(p);
        records.push(r);
        onRecord?.(r);
      });
      inflight.add(p);
      // After a stall of the bench itself, carry on from now rather than burst to catch up.
      next = Math.max(next + pauseMs, now());
    }
  };
  const loops = Array.from({ length: clients }, (_, c) => loop(c));
  return {
    records,
    async stop() {
      running = false;
      await Promise.all(loops);
      await Promise.all([...inflight]);
      return records;
    },
  };
}

/**
 * Opens `n` sessions and reads each greeting. Resolves with holders
 * { member, tOpen, tClose (null while open), how } and close() to end the rest.
 */
/** @param {{ host?: string, port: number, n?: number, timeoutMs?: number }} opts */
export async function openHolders({ host = '127.0.0.1', port, n = 8, timeoutMs = 5000 }) {
  const one = () =>
    new Promise((resolve) => {
      /** @type {{ member: string | null, tOpen: number, tClose: number | null, how: string | null, socket: net.Socket | null, mine: boolean }} */
      const h = { member: null, tOpen: now(), tClose: null, how: null, socket: null, mine: false };
      const s = net.connect({ host, port, noDelay: true });
      h.socket = s;
      let buf = '';
      const timer = setTimeout(() => {
        h.how = 'no greeting';
        s.destroy();
        resolve(h);
      }, timeoutMs);
      /** @param {string} how */
      const closed = (how) => {
        if (h.tClose !== null || h.mine) return;
        h.tClose = now();
        h.how ??= how;
        clearTimeout(timer);
        resolve(h);
      };
      s.setEncoding('utf8');
      s.on('data', (d) => {
        if (h.member !== null) return;
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          h.member = buf.slice(0, nl);
          clearTimeout(timer);
          resolve(h);
        }
      });
      s.on('end', () => closed('closed'));
      s.on('close', () => closed('closed'));
      s.on('error', (/** @type {NodeJS.ErrnoException} */ err) => closed(err.code ?? 'error'));
    });
  const holders = await Promise.all(Array.from({ length: n }, one));
  return {
    holders,
    /** Ends the sessions still open; their tClose stays null (the bench's own close is not the balancer's). */
    close() {
      for (const h of holders) {
        h.mine = true;
        h.socket.destroy();
      }
    },
  };
}
