/** Prometheus helpers: each metric exists once per registry and is shared by all its users. */
import type { Registry } from 'prom-client';

/** Returns the metric named `name` in `registry`, creating it on first use. */
export function metric<T>(registry: Registry, name: string, type: abstract new (...args: never[]) => T, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (existing instanceof type) return existing;
  throw new Error(`metric ${name} is already registered with a different type`);
}
