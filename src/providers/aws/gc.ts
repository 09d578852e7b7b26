/** The garbage-collection loop: every interval, sweep what belongs to Services that are gone. */
import type { Logger } from 'pino';
import type { Clock } from '../../kube/clock.js';
import type { Cache } from '../../kube/informer.js';
import type { ReadonlyService } from '../provider.js';

export interface SweepResult {
  loadBalancers: string[];
  targetGroups: string[];
  securityGroups: string[];
}

export interface Sweeper {
  sweep(signal: AbortSignal, liveServiceKeys: ReadonlySet<string>, options: { dryRun: boolean; logger: Logger }): Promise<SweepResult>;
}

export interface GarbageCollectionOptions {
  services: Cache<ReadonlyService & { metadata?: { name?: string; namespace?: string } }>;
  intervalMs: number;
  dryRun: boolean;
  clock: Clock;
  logger: Logger;
  onSwept?: (result: SweepResult) => void;
}

export async function runGarbageCollection(provider: Sweeper, options: GarbageCollectionOptions, signal: AbortSignal): Promise<void> {
  if (!(await options.services.waitForSync(signal))) return;
  const stopped = (): boolean => signal.aborted;
  while (!stopped()) {
    try {
      const live = new Set(options.services.list().map((s) => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`));
      const result = await provider.sweep(signal, live, { dryRun: options.dryRun, logger: options.logger });
      options.onSwept?.(result);
      if (result.loadBalancers.length + result.targetGroups.length + result.securityGroups.length > 0) {
        options.logger.info({ ...result, dryRun: options.dryRun }, options.dryRun ? 'garbage collection (dry run): would delete' : 'garbage collection: deleted');
      }
    } catch (error) {
      if (stopped()) return;
      options.logger.warn({ err: error }, 'garbage collection sweep failed; next try after the interval');
    }
    try {
      await options.clock.sleep(options.intervalMs, signal);
    } catch {
      return;
    }
  }
}
