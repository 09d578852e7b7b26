/**
 * One informer per resource, shared by every consumer (controllers and providers), like
 * client-go's SharedInformerFactory. Created lazily by path; started once per leadership term;
 * a consumer that asks after the start gets a running informer.
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from './prom.js';
import type { Clock } from './clock.js';
import { Informer, type Cache, type InformerOptions, type KubeObject } from './informer.js';
import { metric } from './metrics.js';
import type { KubeClient } from './rest.js';

/** What a consumer needs: the shared informer for a collection path. */
export interface InformerSource {
  informer<T extends KubeObject>(path: string): Cache<T>;
}

export type InformerSettings = Omit<InformerOptions, 'path' | 'clock' | 'logger'>;

export class SharedInformers implements InformerSource {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly running: Promise<void>[] = [];
  private signal: AbortSignal | undefined;
  private readonly watches: Gauge<'resource'>;

  constructor(
    private readonly client: KubeClient,
    private readonly options: { clock: Clock; logger: Logger; registry: Registry; settings?: Readonly<Record<string, InformerSettings>> },
  ) {
    const registers = [options.registry];
    this.watches = metric(options.registry, 'portico_informer_watches', Gauge<'resource'>, () => new Gauge({ name: 'portico_informer_watches', help: 'Open watches per resource (one per resource when informers are shared)', labelNames: ['resource'], registers }));
  }

  informer<T extends KubeObject>(path: string): Informer<T> {
    let informer = this.informers.get(path);
    if (!informer) {
      informer = new Informer<KubeObject>(this.client, {
        ...this.options.settings?.[path],
        path,
        clock: this.options.clock,
        logger: this.options.logger.child({ informer: path }),
        onWatch: (open) => this.watches.inc({ resource: path }, open ? 1 : -1),
      });
      this.informers.set(path, informer);
      if (this.signal) this.running.push(informer.run(this.signal));
    }
    return informer as unknown as Informer<T>;
  }

  /** Starts every informer created so far, and any created later, until `signal` aborts. */
  start(signal: AbortSignal): void {
    if (this.signal) throw new Error('shared informers already started');
    this.signal = signal;
    for (const informer of this.informers.values()) this.running.push(informer.run(signal));
  }

  /** Resolves true once every informer created so far has listed, false if `signal` aborts first. */
  async waitForSync(signal: AbortSignal): Promise<boolean> {
    const synced = await Promise.all([...this.informers.values()].map((i) => i.waitForSync(signal)));
    return synced.every(Boolean);
  }

  /** Resolves once every informer has stopped (after the start signal aborted). */
  async stopped(): Promise<void> {
    await Promise.all(this.running);
  }

  paths(): string[] {
    return [...this.informers.keys()];
  }
}
