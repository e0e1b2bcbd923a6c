// Only what every command needs is imported here; each command's own modules are loaded
// when it runs, so that the daemon holds none of the simulator's or the status client's
// code, and its heap limit (limitYoungGeneration) is set before its modules load.
import { parseCommandLine } from './args.js';
import { EXIT } from '../errors.js';
import { limitYoungGeneration } from '../heap.js';
import { ignoreClosedOutput } from './output.js';
import { VERSION } from '../version.js';

export const USAGE = `mirrorlb ${VERSION}: primary-only TCP balancer for database mirrors

Usage:
  mirrorlb --config FILE          run the balancer (JSON logs on stdout); -c FILE also works
  mirrorlb check --config FILE    validate a config; exit 1 with FILE:LINE:COL: message per problem
  mirrorlb demo                   two simulated mirror sets + the balancer + the status page
  mirrorlb sim --name N --superserver PORT --web PORT [--role primary|backup]
                                  one simulated mirror member
  mirrorlb status [--admin URL]   the balancer's state as a table
  mirrorlb help [COMMAND]         this text, or one command's (also: mirrorlb COMMAND --help)
  mirrorlb --version | --help

Signals: SIGHUP reloads the config (an invalid one is refused, the old one keeps running);
SIGTERM/SIGINT: /readyz answers 503 while clients are still accepted for shutdown.grace (a second
signal ends it), then listeners close and sessions finish up to shutdown.drain_timeout, exit 0.
`;

/** Entry point of bin/mirrorlb.js. Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  ignoreClosedOutput(process.stdout, process.stderr);
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'check': {
      const { runCheck } = await import('./check.js');
      return runCheck(rest, process.stdout, process.stderr);
    }
    case 'demo': {
      limitYoungGeneration();
      const { runDemo } = await import('./demo.js');
      return runDemo(rest, process.stdout, process.stderr);
    }
    case 'sim': {
      const { runSim } = await import('./sim.js');
      return runSim(rest);
    }
    case 'status': {
      const { runStatus } = await import('./status.js');
      return runStatus(rest, process.stdout, process.stderr);
    }
    case 'help':
      return runHelp(rest);
    default:
      return runMain(argv);
  }
}

/** `mirrorlb help [COMMAND]`. */
async function runHelp(argv: string[]): Promise<number> {
  const args = parseCommandLine(argv, {}, 1);
  if (args.kind === 'error') {
    process.stderr.write(`mirrorlb help: ${args.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const topic = args.kind === 'ok' ? args.positionals[0] : undefined;
  const usage = topic === undefined ? USAGE : await commandUsage(topic);
  if (usage === null) {
    process.stderr.write(`mirrorlb help: no command ${JSON.stringify(topic)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  process.stdout.write(usage);
  return EXIT.ok;
}

async function commandUsage(cmd: string): Promise<string | null> {
  switch (cmd) {
    case 'check':
      return (await import('./check.js')).CHECK_USAGE;
    case 'demo':
      return (await import('./demo.js')).DEMO_USAGE;
    case 'sim':
      return (await import('./sim.js')).SIM_USAGE;
    case 'status':
      return (await import('./status.js')).STATUS_USAGE;
    case 'run':
    case 'help':
      return USAGE;
    default:
      return null;
  }
}

async function runMain(argv: string[]): Promise<number> {
  const args = parseCommandLine(argv, {
    config: { type: 'string', short: 'c', value: 'a file name' },
    version: { type: 'boolean', short: 'v' },
  });
  if (args.kind === 'help') {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (args.kind === 'error') {
    // A bare word here is a mistyped command more often than anything else.
    const message = args.message.replace(/^unexpected argument /, 'unknown command ');
    process.stderr.write(`mirrorlb: ${message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (args.values.version) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  if (!args.values.config) {
    process.stderr.write(
      `mirrorlb: --config FILE is required to run the balancer (try \`mirrorlb demo\`)\n\n${USAGE}`,
    );
    return EXIT.usage;
  }
  limitYoungGeneration();
  const { runDaemon } = await import('./run.js');
  return runDaemon(args.values.config, process.stderr);
}
