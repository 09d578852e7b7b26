#!/usr/bin/env node
/** Entry point: `portico controller | demo | version`. */
import { ConfigError, CONTROLLER_FLAGS, parseControllerFlags } from './config.js';
import { createLogger } from './kube/logger.js';

const USAGE = `Usage:
  portico controller [flags]   reconcile LoadBalancer Services (see docs/controller.md for flags)
  portico speaker [flags]      answer ARP/NDP for load-balancer addresses (--help for flags)
  portico demo [--once]        local control plane + controller + seed examples
  portico version

Controller flags:
${Object.entries(CONTROLLER_FLAGS)
  .map(([name, spec]) => `  --${name}${'default' in spec ? ` (default ${String(spec.default)})` : ''}`)
  .join('\n')}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'controller': {
      let config;
      try {
        config = parseControllerFlags(rest);
      } catch (error) {
        process.stderr.write(`portico controller: ${(error as Error).message}\n\n${USAGE}`);
        return 2;
      }
      if (rest.includes('--help')) {
        process.stdout.write(USAGE);
        return 0;
      }
      const logger = createLogger(config.logLevel);
      const { startController } = await import('./manager.js');
      const shutdown = new AbortController();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
          logger.info({ signal }, 'shutting down');
          shutdown.abort();
        });
      }
      const running = await startController(config, shutdown.signal, { logger });
      const outcome = await running.done;
      // Lost leadership (not a requested stop): exit non-zero so the pod restarts fresh.
      return outcome === 'lost' && !shutdown.signal.aborted ? 1 : 0;
    }
    case 'speaker':
      return (await import('./cmd/speaker.js')).runSpeaker(rest);
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      await runDemo(rest);
      return 0;
    }
    case 'version':
      process.stdout.write('portico 0.1.0\n');
      return 0;
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`portico: unknown command ${command}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`portico: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
