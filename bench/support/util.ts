/** Small helpers shared by benchmarks: bounded concurrency, statistics, formatting, machine info. */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

/** Bad flags: the runner prints the message (no stack) and exits 2. */
export class UsageError extends Error {}

/**
 * Runs `fn` over `items` with at most `limit` in flight. Stops handing out new items after the
 * first failure and rethrows it once the in-flight ones have settled.
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const index = next++;
      if (index >= items.length) return;
      try {
        await fn(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function mb(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

export function machine(): { cpus: number; cpuModel: string; totalMemGb: number; node: string; platform: string } {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    totalMemGb: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** A plain text table: first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const line = (row: readonly string[]): string => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const [header, ...body] = rows;
  if (!header) return '';
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/**
 * Peak RSS of this process over a phase: sampled every `everyMs`, and on Linux also the kernel's
 * exact high-water mark (VmHWM, reset at the start through /proc/self/clear_refs), which catches
 * peaks between samples. Reports what the sampling itself cost.
 */
export function sampleRss(everyMs = 100): { stop(): { peakBytes: number; sampledPeakBytes: number; kernelPeakBytes: number | undefined; samples: number; costMs: number } } {
  const kernelHwm = resetHighWaterMark();
  let peak = process.memoryUsage.rss();
  let samples = 0;
  let costMs = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    peak = Math.max(peak, process.memoryUsage.rss());
    samples++;
    costMs += performance.now() - t;
  }, everyMs);
  let result: ReturnType<ReturnType<typeof sampleRss>['stop']> | undefined;
  return {
    stop: () => {
      if (!result) {
        clearInterval(timer);
        peak = Math.max(peak, process.memoryUsage.rss());
        const kernelPeakBytes = kernelHwm ? readHighWaterMark() : undefined;
        result = { peakBytes: Math.max(peak, kernelPeakBytes ?? 0), sampledPeakBytes: peak, kernelPeakBytes, samples, costMs: round(costMs, 1) };
      }
      return result;
    },
  };
}

function resetHighWaterMark(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return readHighWaterMark() !== undefined;
  } catch {
    return false;
  }
}

function readHighWaterMark(): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

export interface ProcessLoad {
  cpuSeconds: number;
  eventLoopUtilization: number;
  /** How late timers ran (a proxy for how long a ready response waits for the loop), ms. */
  eventLoopDelayMeanMs: number;
  eventLoopDelayP99Ms: number;
}

/** CPU seconds, event-loop utilization and event-loop delay of this process over a phase. */
export function processLoad(): { stop(): ProcessLoad } {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  return {
    stop: () => {
      delay.disable();
      const used = process.cpuUsage(cpu);
      return {
        cpuSeconds: round((used.user + used.system) / 1e6),
        eventLoopUtilization: round(performance.eventLoopUtilization(elu).utilization),
        // The histogram is in ns and includes the 10 ms sampling interval itself.
        eventLoopDelayMeanMs: round(Math.max(0, delay.mean / 1e6 - 10), 2),
        eventLoopDelayP99Ms: round(Math.max(0, delay.percentile(99) / 1e6 - 10), 2),
      };
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `--flag=value` as an integer within [min, max], or a UsageError naming the flag. */
export function intFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag}=${value}: expected an integer from ${String(min)} to ${String(max)}`);
  return n;
}

/** String flags `--name=value` with their defaults; an unknown flag is a usage error (strict). */
export function stringFlags<K extends string>(args: string[], defaults: Record<K, string>): Record<K, string> {
  const options = Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string' as const, default: value as string }]));
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options });
  return values as Record<K, string>;
}
