/**
 * A controller module: what the manager (src/cmd/controller.ts) starts from a list once per
 * leadership term, on the term's shared informers. A module registers its informers in
 * `create` (so they are started and synced together) and reconciles in `run`.
 */
import type { Logger } from 'pino';
import type { Registry } from '../kube/prom.js';
import type { Clock } from '../kube/clock.js';
import type { EventSink } from '../kube/events.js';
import type { KubeClient } from '../kube/rest.js';
import type { InformerSource } from '../kube/shared-informers.js';

/** What a module gets for one leadership term. */
export interface ModuleDeps {
  /** Guarded: every write checks that this process still leads, and fails once the term ended. */
  client: KubeClient;
  informers: InformerSource;
  events: EventSink;
  clock: Clock;
  /** Already a child logger named after the module. */
  logger: Logger;
  registry: Registry;
}

export interface ControllerModule {
  readonly name: string;
  /**
   * Runs until `signal` aborts (leadership lost or shutdown). Called after every informer the
   * module asked for in its factory has been started; the module waits for their sync itself.
   */
  run(signal: AbortSignal): Promise<void>;
  /** Whether reconcile work is queued or running now; Events yield to it (EventRecorder.yieldTo). */
  busy?(): boolean;
}
