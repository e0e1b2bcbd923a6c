/**
 * What each mirror kind changes in the generic health defaults, and why. Applied under the
 * file's own keys: DEFAULTS.health < the kind's values < top-level `health` < the mirror's
 * `health` (an explicit key always wins). docs/configuration.md explains each value.
 */
import type { RawHealth } from './defaults.js';
import type { MirrorKind } from './types.js';

export const KIND_HEALTH: Readonly<Record<MirrorKind, Partial<RawHealth>>> = Object.freeze({
  // Nothing is known about the database: a status alone decides (200 primary, 503 not), and
  // fencing comes at 10s, before the usual cluster managers' failover deadlines (30s and more)
  // but after a status page restart of a few seconds.
  generic: {},
  // IRIS's /csp/mirror_status.cxw answers 200 SUCCESS on the primary and 503 FAILED on any
  // other member. Requiring the bodies turns a Web Gateway's own 500/503 HTML error page into
  // an unexpected answer instead of a demotion. IRIS fences itself through the arbiter (a
  // primary that loses the backup and the arbiter stops serving), so fencing here only has to
  // catch what the arbiter does not, and may ride out a Web Gateway restart.
  iris: { expect_body: 'SUCCESS', not_primary_body: 'FAILED', fence_after: '60s' },
  // Patroni's GET /primary answers 200 as soon as the node holds the leader lock, while the
  // JSON body's role comes from pg_is_in_recovery(): "replica" until PostgreSQL has left
  // recovery, then "master" (Patroni 3.0) or "primary" (later). Only 200 with that role is
  // primary; a 200 saying replica is the node's own "not yet" (a promotion in progress), so
  // it is listed as not primary: authoritative, never routed to. Without a watchdog Patroni
  // does not fence itself, so fencing must come before the replica's promotion, below
  // ttl - loop_wait (20s at Patroni's defaults, 9s at ttl 10s / loop_wait 1s).
  patroni: {
    expect_body: ['"role": "master"', '"role": "primary"'],
    // While a switchover stops PostgreSQL the old leader still holds the lock and answers
    // 200 "role": "master" with "state": "stopping" for about a second, refusing new
    // connections: only a running PostgreSQL is a primary (docs/patroni.md).
    expect_body_all: '"state": "running"',
    not_primary_status: [503, 200],
    fence_after: '5s',
  },
});
