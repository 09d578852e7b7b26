/**
 * prom-client's classes, each loaded from its own file. Its index also loads its push gateway,
 * cluster aggregator, summaries and default-metric collectors (these with OpenTelemetry's API):
 * 30-40 ms of every start on Node 22, against 3 ms for what Portico uses, and the collectors
 * are needed only at the first scrape (see processRegistry in metrics.ts). The files are the
 * package's own (no `exports` map restricts them); the types are those of its index.
 */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const load = createRequire(import.meta.url);

export type Registry = PromClient.Registry;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;

const registryModule = load('prom-client/lib/registry') as typeof PromClient.Registry & { globalRegistry: PromClient.Registry };

export const Registry: typeof PromClient.Registry = registryModule;
/** prom-client's default registry, as its index exports it (`register`). */
export const globalRegistry = registryModule.globalRegistry;
export const Counter = load('prom-client/lib/counter') as typeof PromClient.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof PromClient.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof PromClient.Histogram;

/** Loaded on first call: the collectors are the heaviest part of the package. */
export function collectDefaultMetrics(config: PromClient.DefaultMetricsCollectorConfiguration<PromClient.RegistryContentType>): void {
  (load('prom-client/lib/defaultMetrics') as typeof PromClient.collectDefaultMetrics)(config);
}
