/**
 * A controller process that leads many terms: `portico controller` exits when it loses
 * leadership (so a pod restarts fresh), so a process with 20 terms exists only where
 * startController runs again in the same process — as lb-burst and the tests do. This is that
 * process: the compiled controller (dist/, as the image runs it) with the CLI's flags, started
 * again each time a term ends with lost leadership.
 *
 *   node --expose-gc dist/bench/terms-process.js <controller flags>
 *   (support/process.ts transpiles this file there: no loader runs in the measured process)
 *
 * One JSON line per event on stdout: {"event":"started","starts":n} when it starts (again),
 * {"event":"lost"} when a term ended with leadership lost, and on SIGUSR2 two full GCs then
 * {"event":"memory", rss, heapUsed, heapTotal, external, arrayBuffers} (bytes). SIGTERM stops it.
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as Config from '../../src/cmd/config.js';
import type * as Controller from '../../src/cmd/controller.js';
import type * as Logger from '../../src/kube/logger.js';

// Run from dist/bench/: two levels up is the repository.
const root = fileURLToPath(new URL('../../', import.meta.url));
const load = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(root, 'dist', path)).href)) as T;

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const { parseControllerFlags } = await load<typeof Config>('src/cmd/config.js');
  const { startController } = await load<typeof Controller>('src/cmd/controller.js');
  const { createLogger } = await load<typeof Logger>('src/kube/logger.js');
  const config = parseControllerFlags(process.argv.slice(2));
  // Logs go to stderr: stdout carries the events.
  const logger = createLogger(config.logLevel, process.stderr);
  const shutdown = new AbortController();
  process.once('SIGTERM', () => shutdown.abort());
  process.once('SIGINT', () => shutdown.abort());
  // A function, so that checks after an await are not narrowed away.
  const stopping = (): boolean => shutdown.signal.aborted;
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('SIGUSR2', () => {
    gc?.();
    gc?.();
    emit({ event: 'memory', gc: gc !== undefined, ...process.memoryUsage() });
  });
  for (let starts = 1; !stopping(); starts++) {
    emit({ event: 'started', starts });
    const running = await startController(config, shutdown.signal, { logger });
    const outcome = await running.done;
    if (outcome !== 'lost' || stopping()) break;
    emit({ event: 'lost' });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
