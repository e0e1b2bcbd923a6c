import http from 'node:http';
import https from 'node:https';

/**
 * The TLS settings of a member's https check URLs: PEM text (never paths; the config reads
 * the files), the server name to send and check the certificate against (null: the URL's
 * host), and whether the server's certificate is verified at all.
 */
export interface ProbeTls {
  /** CA bundle the server's certificate must chain to; null: Node's built-in roots. */
  readonly ca: string | null;
  /** Client certificate (chain) and its key, for servers that require one. */
  readonly cert: string | null;
  readonly key: string | null;
  readonly servername: string | null;
  readonly verify: boolean;
}

const AGENT_OPTIONS: http.AgentOptions = {
  keepAlive: true,
  keepAliveMsecs: 1000,
  // Probes to one host run one per member at a time; a few sockets are plenty, and the
  // cap keeps a misbehaving gateway from collecting hundreds.
  maxSockets: 8,
  maxFreeSockets: 2,
  // The most recently used idle socket is the least likely to have been closed by the server.
  scheduling: 'lifo',
  // Idle sockets are dropped before the common 5 s server keep-alive timeout ends, so a
  // probe rarely writes into a socket the server is closing (servers that send a
  // `Keep-Alive: timeout=` hint get a matching bound from Node itself).
  timeout: 4000,
};

function tlsAgent(tls: ProbeTls): https.Agent {
  return new https.Agent({
    ...AGENT_OPTIONS,
    ...(tls.ca === null ? {} : { ca: tls.ca }),
    ...(tls.cert === null ? {} : { cert: tls.cert }),
    ...(tls.key === null ? {} : { key: tls.key }),
    ...(tls.servername === null ? {} : { servername: tls.servername }),
    rejectUnauthorized: tls.verify,
  });
}

/**
 * The prober's keep-alive agents: one for http, one for https with Node's defaults, and one
 * per distinct ProbeTls object (the config makes one per mirror or member and keeps it until
 * a reload), so each TLS option set keeps its connections and sessions across probes.
 * Owned by one Prober; `destroy()` closes every socket of every agent.
 */
export class CheckAgents {
  readonly http = new http.Agent(AGENT_OPTIONS);
  private readonly https = new https.Agent(AGENT_OPTIONS);
  private readonly byTls = new WeakMap<ProbeTls, https.Agent>();
  /**
   * Every TLS agent made, for destroy(). Weak: a reload's new config makes new ProbeTls
   * objects, and the old ones' agents must go once their idle sockets have timed out (an
   * agent with a live socket is held by that socket, so destroy() still finds it).
   */
  private readonly made = new Set<WeakRef<https.Agent>>();

  forHttps(tls: ProbeTls | null | undefined): https.Agent {
    if (tls === null || tls === undefined) return this.https;
    let agent = this.byTls.get(tls);
    if (agent === undefined) {
      agent = tlsAgent(tls);
      this.byTls.set(tls, agent);
      for (const ref of this.made) if (ref.deref() === undefined) this.made.delete(ref);
      this.made.add(new WeakRef(agent));
    }
    return agent;
  }

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
    for (const ref of this.made) ref.deref()?.destroy();
    this.made.clear();
  }
}
