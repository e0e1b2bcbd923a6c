// Load for the fault suite: client sessions streaming checksummed request/response frames
// through the balancer to the simulated members' SuperServer (which greets with the
// member's name, then echoes). Every session is verified byte for byte and reported as one
// JSON line on stdout when it ends:
//
//   completed    every frame echoed intact, then a clean close both ways (we ended first)
//   closed       the far side closed (FIN or RST) first; every byte received was a correct
//                prefix of what was sent (a cut session, noticed by the client: never lost)
//   no_greeting  closed before the member's greeting (a held client closed at its hold timeout)
//   refused      the connect itself failed (nothing listening)
//   corrupt      a byte differed, came out of order, or more came back than was sent
//   stalled      no progress for stallMs (greetTimeoutMs before the greeting): a hung session
//
// A frame is [seq u32][len u32][payload][sha256(payload)]; the echo is checked against the
// bytes sent and each echoed frame's sequence number and checksum are checked again.
// Per target: `short` clients run sessions of a few rounds back to back, `long` clients keep
// one session going until told to stop, and `arrivals` new short sessions start every
// second whether or not earlier ones finished (so new clients keep arriving while the
// others are stuck in a fault).
//   node load-client.mjs CONFIG_JSON      stdin: "stop" ends every session gracefully
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { setTimeout as later, clearTimeout as cancel } from 'node:timers';

const cfg = {
  frameMin: 64,
  frameMax: 16384,
  roundsMin: 4,
  roundsMax: 12,
  thinkMinMs: 10,
  thinkMaxMs: 40,
  greetTimeoutMs: 15000,
  stallMs: 5000,
  ...JSON.parse(process.argv[2] || '{}'),
};
let stopping = false;
let nextId = 0;
const emit = (rec) => process.stdout.write(`${JSON.stringify(rec)}\n`);
const rand = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

function makeFrame(seq, size) {
  const payload = randomBytes(size);
  const f = Buffer.allocUnsafe(8 + size + 32);
  f.writeUInt32BE(seq, 0);
  f.writeUInt32BE(size, 4);
  payload.copy(f, 8);
  createHash('sha256')
    .update(payload)
    .digest()
    .copy(f, 8 + size);
  return f;
}

/** Checks echoed frames as they complete: sequence in order, checksum of each payload. */
class FrameChecker {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.seq = 0;
  }
  /** Returns an error text, or null. */
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const seq = this.buf.readUInt32BE(0);
      const len = this.buf.readUInt32BE(4);
      if (seq !== this.seq) return `frame ${seq} where ${this.seq} was due`;
      if (len > cfg.frameMax) return `frame length ${len} out of range`;
      if (this.buf.length < 8 + len + 32) return null;
      const sum = createHash('sha256')
        .update(this.buf.subarray(8, 8 + len))
        .digest();
      if (!sum.equals(this.buf.subarray(8 + len, 8 + len + 32))) return `checksum of frame ${seq}`;
      this.seq++;
      this.buf = this.buf.subarray(8 + len + 32);
    }
    return null;
  }
}

function session(target, kind, worker) {
  return new Promise((resolve) => {
    const rec = {
      type: 'session',
      id: ++nextId,
      mirror: target.mirror,
      kind,
      worker,
      tConnect: Date.now(),
      tGreet: null,
      tEnd: null,
      member: null,
      outcome: null,
      rounds: 0,
      sent: 0,
      verified: 0,
      endedBy: null,
      detail: null,
    };
    const rounds =
      kind === 'long' ? Infinity : kind === 'arrival' ? rand(1, 3) : rand(cfg.roundsMin, cfg.roundsMax);
    const sock = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    sock.setNoDelay(true);
    let phase = 'connect';
    let greet = Buffer.alloc(0);
    let pending = []; // sent, not yet echoed
    let pendingBytes = 0;
    const checker = new FrameChecker();
    let timer = null;
    let thinkTimer = null;
    let weEnded = false;
    let done = false;

    const finish = (outcome, endedBy, detail = null) => {
      if (done) return;
      done = true;
      cancel(timer);
      cancel(thinkTimer);
      rec.outcome = outcome;
      rec.endedBy = endedBy;
      rec.detail = detail;
      rec.tEnd = Date.now();
      sock.destroy();
      resolve(rec);
    };
    const watch = (ms, what) => {
      cancel(timer);
      timer = later(() => finish('stalled', null, `no progress for ${ms} ms ${what}`), ms);
    };
    const sendRound = () => {
      if (done) return;
      if (stopping || rec.rounds >= rounds) {
        weEnded = true;
        phase = 'closing';
        watch(cfg.stallMs, 'waiting for the close');
        sock.end();
        return;
      }
      const f = makeFrame(rec.rounds, rand(cfg.frameMin, cfg.frameMax));
      rec.rounds++;
      rec.sent += f.length;
      pending.push(f);
      pendingBytes += f.length;
      watch(cfg.stallMs, `waiting for echo of frame ${rec.rounds - 1}`);
      sock.write(f);
    };
    const onEcho = (chunk) => {
      if (chunk.length > pendingBytes) return finish('corrupt', null, 'more bytes than were sent');
      let off = 0;
      while (off < chunk.length) {
        const head = pending[0];
        const n = Math.min(head.length, chunk.length - off);
        if (!chunk.subarray(off, off + n).equals(head.subarray(0, n))) {
          return finish('corrupt', null, `echo differs at byte ${rec.verified + off}`);
        }
        off += n;
        if (n === head.length) pending.shift();
        else pending[0] = head.subarray(n);
      }
      pendingBytes -= chunk.length;
      rec.verified += chunk.length;
      const bad = checker.push(chunk);
      if (bad) return finish('corrupt', null, bad);
      if (pendingBytes === 0 && phase === 'echo') {
        cancel(timer);
        thinkTimer = later(sendRound, rand(cfg.thinkMinMs, cfg.thinkMaxMs));
      } else {
        watch(cfg.stallMs, 'waiting for echo');
      }
    };

    sock.once('connect', () => {
      phase = 'greet';
      watch(cfg.greetTimeoutMs, 'waiting for the greeting');
    });
    sock.on('data', (chunk) => {
      if (done) return;
      if (phase === 'greet') {
        greet = Buffer.concat([greet, chunk]);
        const nl = greet.indexOf(10);
        if (nl < 0) {
          if (greet.length > 64) finish('corrupt', null, 'greeting longer than 64 bytes');
          return;
        }
        rec.member = greet.subarray(0, nl).toString();
        rec.tGreet = Date.now();
        phase = 'echo';
        const rest = greet.subarray(nl + 1);
        if (rest.length > 0) return finish('corrupt', null, 'bytes before anything was sent');
        cancel(timer);
        sendRound();
        return;
      }
      onEcho(chunk);
    });
    sock.on('end', () => {
      if (done) return;
      if (phase === 'connect' || phase === 'greet') return finish('no_greeting', 'fin');
      if (weEnded && pendingBytes === 0) return finish('completed', 'fin');
      finish('closed', 'fin', `after ${rec.verified} of ${rec.sent} bytes echoed`);
    });
    sock.on('error', (err) => {
      if (done) return;
      const how = err.code === 'ECONNRESET' ? 'rst' : `error ${err.code ?? err.message}`;
      if (phase === 'connect') return finish('refused', how);
      if (phase === 'greet') return finish('no_greeting', how);
      finish('closed', how, `after ${rec.verified} of ${rec.sent} bytes echoed`);
    });
    sock.on('close', () => {
      if (done) return;
      if (phase === 'connect') return finish('refused', 'close');
      if (phase === 'greet') return finish('no_greeting', 'close');
      finish('closed', 'close', `after ${rec.verified} of ${rec.sent} bytes echoed`);
    });
  });
}

async function worker(target, kind, index) {
  await sleep(rand(0, 100));
  while (!stopping) {
    const rec = await session(target, kind, index);
    emit(rec);
    if (stopping) break;
    await sleep(rec.outcome === 'completed' ? rand(5, 20) : 50);
  }
}

/** Open loop: a new session every 1000/rate ms, at most `cap` in flight. */
async function arrivals(target, rate, cap = 100) {
  const inFlight = new Set();
  let n = 0;
  while (!stopping) {
    if (inFlight.size < cap) {
      const p = session(target, 'arrival', n++).then((rec) => {
        emit(rec);
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
    await sleep(1000 / rate);
  }
  await Promise.all([...inFlight]);
}

const workers = [];
for (const target of cfg.targets) {
  for (let i = 0; i < (target.short ?? 0); i++) workers.push(worker(target, 'short', i));
  for (let i = 0; i < (target.long ?? 0); i++) workers.push(worker(target, 'long', i));
  if (target.arrivals) workers.push(arrivals(target, target.arrivals));
}
emit({ type: 'ready', workers: workers.length, t: Date.now() });

process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  if (text.split('\n').includes('stop')) stopping = true;
});
process.stdin.on('end', () => (stopping = true));

Promise.all(workers).then(() => {
  emit({ type: 'done', t: Date.now() });
  process.exit(0);
});
