import { ConfigValueError } from '../config/errors.js';
import { EXIT } from '../errors.js';
import { parseListenAddress } from '../config/hostport.js';
import { parseConfig } from '../config/load.js';
import { formatHostPort, isLogLevel, LOG_LEVELS, type LogLevel } from '../config/types.js';
import { SimMember } from '../sim/member.js';
import { createLogger } from '../log.js';
import { startBalancer } from './run.js';
import { parseCommandLine } from './args.js';

const MEMBERS = [
  { mirror: 'ap1', name: 'ap1a', role: 'primary' },
  { mirror: 'ap1', name: 'ap1b', role: 'backup' },
  { mirror: 'ap2', name: 'ap2a', role: 'primary' },
  { mirror: 'ap2', name: 'ap2b', role: 'backup' },
] as const;

/**
 * `mirrorlb demo`: four simulated members in this process (two mirror sets), the balancer
 * in front of them on 1972/11972 and the admin page, all on loopback.
 */
export async function runDemo(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const flags = parseCommandLine(argv, {
    ap1: { type: 'string', value: 'HOST:PORT' },
    ap2: { type: 'string', value: 'HOST:PORT' },
    admin: { type: 'string', value: 'HOST:PORT' },
    'log-level': { type: 'string', value: 'a level' },
  });
  if (flags.kind === 'help') {
    out.write(DEMO_USAGE);
    return EXIT.ok;
  }
  const settings = flags.kind === 'ok' ? demoSettings(flags.values) : flags.message;
  if (typeof settings === 'string') {
    err.write(`mirrorlb demo: ${settings}\n\n${DEMO_USAGE}`);
    return EXIT.usage;
  }
  const { ap1, ap2, admin: adminListen, logLevel } = settings;
  const log = createLogger(logLevel);

  const sims = MEMBERS.map(
    (m) =>
      new SimMember({
        name: m.name,
        host: '127.0.0.1',
        superserverPort: 0,
        webPort: 0,
        role: m.role,
        logger: log.child({ sim: m.name }),
      }),
  );
  await Promise.all(sims.map((s) => s.start()));
  const yaml = [
    'mirrors:',
    ...['ap1', 'ap2'].flatMap((mirror) => [
      `  - name: ${mirror}`,
      // The simulated members answer like IRIS (200 SUCCESS / 503 FAILED).
      '    kind: iris',
      `    listen: "${mirror === 'ap1' ? ap1 : ap2}"`,
      '    members:',
      ...sims
        .filter((s) => s.name.startsWith(mirror))
        .flatMap((s) => [
          `      - name: ${s.name}`,
          `        address: 127.0.0.1:${s.superserverPort}`,
          `        check: http://127.0.0.1:${s.webPort}/csp/mirror_status.cxw`,
        ]),
    ]),
    'admin:',
    `  listen: "${adminListen}"`,
    'log:',
    `  level: ${logLevel}`,
    // A lone interactive process: no outer load balancer to wait for, so Ctrl-C stops at once.
    'shutdown:',
    '  grace: 0',
  ].join('\n');
  let running;
  try {
    running = await startBalancer(parseConfig(yaml, '<demo>', process.env), { log });
  } catch (e) {
    await Promise.all(sims.map((s) => s.stop()));
    err.write(`mirrorlb demo: ${(e as Error).message}\n`);
    return EXIT.failed;
  }
  const web = (name: string): number => sims.find((s) => s.name === name)!.webPort;
  // Print the bound addresses: port 0 (any free port) is allowed on every listener.
  const bound = (mirror: string): string => formatHostPort(running.daemon.snapshots().get(mirror)!.listen!);
  const adminAddr = running.admin.address();
  const [host1, port1] = splitHostPort(bound('ap1'));
  out.write(
    [
      'mirrorlb demo: two simulated IRIS mirror sets behind the balancer',
      '',
      `  mirror ap1  ${bound('ap1').padEnd(18)} -> ap1a (primary), ap1b (backup)`,
      `  mirror ap2  ${bound('ap2').padEnd(18)} -> ap2a (primary), ap2b (backup)`,
      `  status page http://${adminAddr.address}:${adminAddr.port}/   (JSON: /status, metrics: /metrics)`,
      '',
      'Connect a client (it prints the member it reached, then echoes what you type):',
      `  nc ${host1} ${port1}`,
      'Switch ap1 over to ap1b and watch new clients follow and old sessions close:',
      `  curl -sd backup http://127.0.0.1:${web('ap1a')}/sim/role; curl -sd primary http://127.0.0.1:${web('ap1b')}/sim/role`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  const code = await running.done;
  await Promise.all(sims.map((s) => s.stop()));
  return code;
}

interface DemoSettings {
  readonly ap1: string;
  readonly ap2: string;
  readonly admin: string;
  readonly logLevel: LogLevel;
}

/**
 * The flags checked before anything starts, each naming its flag: the demo's config is
 * generated, so a problem reported as `<demo>:LINE:COL` would point into a file nobody sees.
 */
function demoSettings(v: {
  ap1?: string;
  ap2?: string;
  admin?: string;
  'log-level'?: string;
}): DemoSettings | string {
  const listens = {
    ap1: v.ap1 ?? '127.0.0.1:1972',
    ap2: v.ap2 ?? '127.0.0.1:11972',
    admin: v.admin ?? '127.0.0.1:9090',
  };
  for (const [flag, value] of Object.entries(listens)) {
    try {
      parseListenAddress(value);
    } catch (e) {
      if (!(e instanceof ConfigValueError)) throw e;
      return `--${flag}: ${e.message}`;
    }
  }
  const level = v['log-level'] ?? 'warn';
  if (!isLogLevel(level))
    return `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`;
  return { ...listens, logLevel: level };
}

function splitHostPort(hp: string): [string, string] {
  const i = hp.lastIndexOf(':');
  return [hp.slice(0, i).replace(/^\[|\]$/g, ''), hp.slice(i + 1)];
}

export const DEMO_USAGE = `Usage: mirrorlb demo [--ap1 HOST:PORT] [--ap2 HOST:PORT] [--admin HOST:PORT] [--log-level LEVEL]
  Defaults: --ap1 127.0.0.1:1972 --ap2 127.0.0.1:11972 --admin 127.0.0.1:9090 --log-level warn
`;
