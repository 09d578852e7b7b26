#!/usr/bin/env node
/** Entry point: flag dispatch only. */
import { ConfigError, controllerFlagsHelp, parseControllerFlags } from './cmd/config.js';
import { KubeConfigError } from './kube/kubeconfig.js';
import { createLogger } from './kube/logger.js';
import { packageVersion } from './paths.js';

const USAGE = `Usage:
  portico controller [flags]   reconcile LoadBalancer Services (docs/controller.md)
  portico release --all        release every balancer and remove Portico's finalizers (docs/uninstall.md)
  portico speaker [flags]      answer ARP/NDP for load-balancer addresses (docs/speaker.md)
  portico version              print the version (also --version)

`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'controller': {
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(`${USAGE}${controllerFlagsHelp()}\n`);
        return 0;
      }
      let config;
      try {
        config = parseControllerFlags(rest);
      } catch (error) {
        process.stderr.write(`portico controller: ${(error as Error).message}\n\nRun 'portico controller --help' for the flags.\n`);
        return 2;
      }
      const logger = createLogger(config.logLevel);
      const { startController } = await import('./cmd/controller.js');
      const shutdown = new AbortController();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
          logger.info({ signal }, 'shutting down');
          shutdown.abort();
        });
      }
      const running = await startController(config, shutdown.signal, { logger, ownsProcess: true });
      const outcome = await running.done;
      // Lost leadership (not a requested stop): exit non-zero so the pod restarts fresh.
      return outcome === 'lost' && !shutdown.signal.aborted ? 1 : 0;
    }
    case 'release':
      return (await import('./cmd/release.js')).runRelease(rest, { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) });
    case 'speaker':
      return (await import('./cmd/speaker.js')).runSpeaker(rest);
    case 'version':
    case '--version':
      process.stdout.write(`portico ${packageVersion()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
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
    if (error instanceof ConfigError || error instanceof KubeConfigError) process.stderr.write(`portico: ${error.message}\n`);
    else process.stderr.write(`portico: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
