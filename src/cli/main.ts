import { runCheck } from './check.js';
import { runDemo } from './demo.js';
import { parseFlags } from './flags.js';
import { runDaemon } from './run.js';
import { runSim } from './sim.js';
import { VERSION } from '../version.js';

export const USAGE = `mirrorlb ${VERSION}: primary-only TCP balancer for database mirrors

Usage:
  mirrorlb --config FILE          run the balancer (JSON logs on stdout); -c FILE also works
  mirrorlb check --config FILE    validate a config; exit 1 with FILE:LINE:COL: message per problem
  mirrorlb demo                   two simulated mirror sets + the balancer + the status page
  mirrorlb sim --name N --superserver PORT --web PORT [--role primary|backup]
                                  one simulated mirror member
  mirrorlb status [--admin URL]   the balancer's state as a table
  mirrorlb --version | --help

Signals: SIGHUP reloads the config (an invalid one is refused, the old one keeps running);
SIGTERM/SIGINT: /readyz answers 503 while clients are still accepted for shutdown.grace (a second
signal ends it), then listeners close and sessions finish up to shutdown.drain_timeout, exit 0.
`;

/** Entry point of bin/mirrorlb.js. Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'check':
      return runCheck(rest, process.stdout, process.stderr);
    case 'demo':
      return runDemo(rest, process.stdout, process.stderr);
    case 'sim':
      return runSim(rest);
    case 'status': {
      const { runStatus } = await import('./status.js');
      return runStatus(rest, process.stdout, process.stderr);
    }
    default:
      return runMain(argv);
  }
}

async function runMain(argv: string[]): Promise<number> {
  const flags = parseFlags(
    argv,
    { config: 'string', version: 'boolean', help: 'boolean' },
    { c: 'config', h: 'help', v: 'version' },
  );
  if ('error' in flags) {
    process.stderr.write(`mirrorlb: ${flags.error}\n\n${USAGE}`);
    return 2;
  }
  if (flags.values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (flags.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (flags.rest.length > 0) {
    process.stderr.write(`mirrorlb: unknown command ${flags.rest[0]}\n\n${USAGE}`);
    return 2;
  }
  if (!flags.values.config) {
    process.stderr.write(
      `mirrorlb: --config FILE is required to run the balancer (try \`mirrorlb demo\`)\n\n${USAGE}`,
    );
    return 2;
  }
  return runDaemon(flags.values.config, process.stderr);
}
