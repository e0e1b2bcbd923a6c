import { Writable } from 'node:stream';
import { AdminServer } from '../../src/admin/server.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { Daemon } from '../../src/daemon.js';
import { Prober } from '../../src/health/probe.js';
import { createLogger } from '../../src/log.js';
import type { SimMember } from '../../src/sim/member.js';

type Test = { teardown(fn: () => unknown): void };

/** Log records written by the daemon under test, parsed back from JSON. */
export class LogSink extends Writable {
  readonly records: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString().split('\n'))
      if (line) this.records.push(JSON.parse(line) as Record<string, unknown>);
    cb();
  }
  messages(): string[] {
    return this.records.map((r) => String(r.msg));
  }
}

export interface MemberSpec {
  readonly name: string;
  /** Where clients are proxied (defaults to the sim's SuperServer port). */
  readonly port: number;
  /** Web port of the status page (the sim's). */
  readonly webPort: number;
}

/** YAML for mirrors of sims on loopback, listening on port 0; `extra` is appended at the top level. */
export function yamlFor(
  mirrors: Record<string, ReadonlyArray<SimMember | MemberSpec>>,
  extra = '',
  mirrorExtra = '',
): string {
  const lines = ['mirrors:'];
  for (const [name, members] of Object.entries(mirrors)) {
    lines.push(`  - name: ${name}`, '    listen: 127.0.0.1:0');
    if (mirrorExtra) lines.push(...mirrorExtra.split('\n').map((l) => `    ${l}`));
    lines.push('    members:');
    for (const m of members) {
      const port = 'port' in m ? m.port : m.superserverPort;
      lines.push(
        `      - name: ${m.name}`,
        `        address: 127.0.0.1:${port}`,
        `        check: http://127.0.0.1:${m.webPort}/csp/mirror_status.cxw`,
      );
    }
  }
  lines.push('admin:', '  listen: 127.0.0.1:0', extra);
  return lines.join('\n');
}

export interface Balancer {
  readonly daemon: Daemon;
  readonly admin: AdminServer;
  readonly logs: LogSink;
  readonly config: Config;
  /** The port a mirror listens on. */
  port(mirror: string): number;
  adminPort(): number;
}

/** Starts a daemon (and its admin listener) from YAML; stopped in teardown. */
export async function withBalancer(t: Test, yaml: string): Promise<Balancer> {
  const config = parseConfig(yaml, 'test.yml', process.env);
  const logs = new LogSink();
  const log = createLogger('debug', logs);
  const daemon = new Daemon(config, { log, prober: new Prober() });
  const admin = new AdminServer(daemon, config.admin, log);
  t.teardown(async () => {
    await daemon.stop(0);
    await admin.close();
  });
  await daemon.start();
  await admin.listen();
  return {
    daemon,
    admin,
    logs,
    config,
    port: (mirror) => {
      const rt = daemon.snapshots().get(mirror);
      if (!rt?.listen) throw new Error(`no mirror ${mirror} listening`);
      return rt.listen.port;
    },
    adminPort: () => admin.address().port,
  };
}
