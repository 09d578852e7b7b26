/** Prometheus helpers: each metric exists once per registry and is shared by all its users. */
import { collectDefaultMetrics, Registry } from './prom.js';
import type { MetricsSource } from './http-server.js';

/** Returns the metric named `name` in `registry`, creating it on first use. */
export function metric<T>(registry: Registry, name: string, type: abstract new (...args: never[]) => T, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (existing instanceof type) return existing;
  throw new Error(`metric ${name} is already registered with a different type`);
}

/**
 * prom-client's process and Node.js metrics. Its event-loop-delay monitor samples on a timer;
 * at the default 10 ms that is 100 wakeups a second, about 0.3 s of CPU a minute in a process
 * with nothing to do. Once a second still catches a blocked loop and costs next to nothing.
 */
export const EVENT_LOOP_SAMPLE_MS = 1_000;

let processMetrics: Registry | undefined;

/**
 * The process's own metrics, collected once per process: prom-client's collectors (a native
 * histogram with its timer, a GC observer) cannot be stopped, so one per controller start
 * would pile up in a process that starts it again (tests, benchmarks).
 */
export function processRegistry(): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
  return processMetrics;
}

/**
 * What /metrics serves: the process's metrics and a component's own, read together at each
 * scrape (a component registers metrics as its terms create them).
 */
export function withProcessMetrics(registry: Registry): MetricsSource {
  return {
    contentType: registry.contentType,
    metrics: () => Registry.merge([processRegistry(), registry]).metrics(),
  };
}
