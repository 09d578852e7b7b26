import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS, ensureImageNode } from '../../hack/image.js';
import { ActivityClient, heapCompactor, IdleCompactor, planCompaction, type CompactionSettings, type CompactionState } from '../../src/kube/idle-compaction.js';
import type { KubeClient, WatchEvent } from '../../src/kube/rest.js';
import { FakeClock } from '../fakes/clock.js';
import { RecordingClient } from '../fakes/recording-client.js';

const MB = 1024 * 1024;
const settings: CompactionSettings = { idleMs: 2_000, minGrowthBytes: 4 * MB, minGrowthRatio: 0.25, maxTimeShare: 0.01 };

describe('planCompaction', () => {
  const base: CompactionState = { now: 100_000, lastActivityAt: 90_000, lastCompaction: undefined, heapBytes: 30 * MB, baselineBytes: 12 * MB };
  const cases: [string, Partial<CompactionState>, ReturnType<typeof planCompaction>][] = [
    ['quiet long enough, heap grew past both thresholds: compact', {}, { kind: 'compact' }],
    ['work 500 ms ago: look again when it has been quiet for idleMs', { lastActivityAt: 99_500 }, { kind: 'wait', ms: 1_500 }],
    ['grew 3 MB: under the 4 MB floor, nothing to do', { heapBytes: 15 * MB }, { kind: 'nothing' }],
    ['grew 5 MB on a 40 MB heap: under 25%, nothing to do', { baselineBytes: 40 * MB, heapBytes: 45 * MB }, { kind: 'nothing' }],
    ['grew 11 MB on a 40 MB heap: past 25%, compact', { baselineBytes: 40 * MB, heapBytes: 51 * MB }, { kind: 'compact' }],
    ['V8 holds less than after the last compaction: nothing', { heapBytes: 8 * MB }, { kind: 'nothing' }],
    ['last compaction took 300 ms, 10 s ago: wait until 1% of the time since went to compacting', { lastCompaction: { at: 90_000, tookMs: 300 } }, { kind: 'wait', ms: 20_000 }],
    ['last compaction took 300 ms, 30 s ago: compact', { lastCompaction: { at: 70_000, tookMs: 300 } }, { kind: 'compact' }],
    ['last compaction took 40 ms, 5 s ago: compact', { lastCompaction: { at: 95_000, tookMs: 40 } }, { kind: 'compact' }],
  ];
  it.each(cases)('%s', (_name, change, expected) => {
    expect(planCompaction({ ...base, ...change }, settings)).toEqual(expected);
  });
});

/** Each compaction takes 100 ms and leaves 14 MB in use. */
function compactorWith(clock: FakeClock, heap: { used: number }): { compactor: IdleCompactor; compactions: number[] } {
  const compactions: number[] = [];
  let elapsedMs = 0;
  const compactor = new IdleCompactor(
    {
      clock,
      heapBytes: () => heap.used,
      stopwatch: () => elapsedMs,
      compact: () => {
        compactions.push(clock.now());
        elapsedMs += 100;
        heap.used = 14 * MB;
      },
    },
    settings,
  );
  return { compactor, compactions };
}

describe('IdleCompactor', () => {
  it('compacts once, idleMs after the last activity of a burst, and then leaves no timer behind', async () => {
    const clock = new FakeClock(0);
    const heap = { used: 12 * MB };
    const { compactor, compactions } = compactorWith(clock, heap);
    expect(clock.pendingTimers).toBe(0);
    for (let i = 0; i < 40; i++) {
      compactor.noteActivity();
      heap.used += MB / 2;
      await clock.advance(250);
    }
    // 40 activities, one timer: activity is cheap during a burst.
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1_000);
    expect(compactions).toEqual([]);
    await clock.advance(1_000);
    expect(compactions).toEqual([9_750 + 2_000]);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(600_000);
    expect(compactions).toHaveLength(1);
  });

  it('looks at the heap after quiet work that left it as it was, and does not compact or wake again', async () => {
    const clock = new FakeClock(0);
    const heap = { used: 12 * MB };
    const { compactor, compactions } = compactorWith(clock, heap);
    compactor.noteActivity();
    heap.used += MB;
    await clock.advance(2_000);
    expect(compactions).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('holds a second compaction until the first one’s time is 1% of the time since', async () => {
    const clock = new FakeClock(0);
    const heap = { used: 12 * MB };
    const { compactor, compactions } = compactorWith(clock, heap);
    compactor.noteActivity();
    heap.used = 40 * MB;
    await clock.advance(2_000);
    compactor.noteActivity();
    heap.used = 40 * MB;
    await clock.advance(5_000);
    expect(compactions).toEqual([2_000]);
    await clock.advance(5_000);
    expect(compactions).toEqual([2_000, 12_000]);
  });

  it('does nothing after stop, and cancels its timer', async () => {
    const clock = new FakeClock(0);
    const heap = { used: 12 * MB };
    const { compactor, compactions } = compactorWith(clock, heap);
    compactor.noteActivity();
    heap.used = 40 * MB;
    compactor.stop();
    expect(clock.pendingTimers).toBe(0);
    compactor.noteActivity();
    await clock.advance(60_000);
    expect(compactions).toEqual([]);
  });
});

describe('ActivityClient', () => {
  it('reports activity when a request is sent and when it is answered, failed or not', async () => {
    let activity = 0;
    const failing: KubeClient = { request: () => Promise.reject(new Error('boom')), watch: () => Promise.resolve() };
    await new ActivityClient(new RecordingClient(), () => activity++).request('GET', '/api/v1/services');
    expect(activity).toBe(2);
    await expect(new ActivityClient(failing, () => activity++).request('GET', '/api/v1/services')).rejects.toThrow('boom');
    expect(activity).toBe(4);
  });

  it('reports each watch event and passes it on unchanged', async () => {
    let activity = 0;
    const events: WatchEvent<{ n: number }>[] = [
      { type: 'ADDED', object: { n: 1 } },
      { type: 'MODIFIED', object: { n: 2 } },
    ];
    const streaming: KubeClient = {
      request: () => Promise.reject(new Error('unused')),
      watch: <T>(_path: string, _query: unknown, onEvent: (event: WatchEvent<T>) => void) => {
        for (const event of events) onEvent(event as WatchEvent<T>);
        return Promise.resolve();
      },
    };
    const seen: WatchEvent<{ n: number }>[] = [];
    await new ActivityClient(streaming, () => activity++).watch<{ n: number }>('/api/v1/services', {}, (e) => seen.push(e), new AbortController().signal);
    expect(seen).toEqual(events);
    expect(activity).toBe(1 + events.length);
  });
});

describe('heapCompactor', () => {
  it('leaves V8 (before 12, no --memory-reducer-gc-count) in charge of memory reduction', () => {
    expect(heapCompactor('11.3.244.8-node.33')).toBeUndefined();
  });

  // The image's runtime: compaction returns the heap, and V8's memory reducer, woken by the
  // mark-compact, stands down instead of running GCs of its own; without the handover it runs
  // them. --optimize-for-size makes the reducer act at its first timer (8 s) rather than wait
  // for a low allocation rate.
  const script = (handOver: boolean): string => `
    import { heapCompactor } from ${JSON.stringify(fileURLToPath(new URL('../../src/kube/idle-compaction.ts', import.meta.url)))};
    const compact = ${handOver ? 'heapCompactor()' : 'undefined'};
    let keep = [];
    for (let round = 0; round < 40; round++) { for (let i = 0; i < 100000; i++) keep.push({ i, s: 'x' + i }); keep = keep.slice(-50000); }
    keep = null;
    const before = process.memoryUsage().heapTotal;
    compact?.();
    console.log('REPORT ' + JSON.stringify({ compactor: typeof compact, before, after: process.memoryUsage().heapTotal }));
    setTimeout(() => {}, 60_000);
  `;
  interface Outcome {
    compactor: string;
    before: number;
    after: number;
    reducerGcs: number;
  }
  /** Runs until the reducer has had its first turn after the report (plus 1.5 s), or 45 s. */
  const run = (handOver: boolean): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      const { binary } = ensureImageNode(() => undefined);
      const child = spawn(binary, [...NODE_FLAGS, '--optimize-for-size', '--trace-memory-reducer', '--import', 'tsx', '--input-type=module', '-e', script(handOver)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let report: Omit<Outcome, 'reducerGcs'> | undefined;
      let reducerGcs = 0;
      let stderr = '';
      let finishing: NodeJS.Timeout | undefined;
      const deadline = setTimeout(() => child.kill(), 45_000);
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.startsWith('REPORT ')) report = JSON.parse(line.slice(7)) as Omit<Outcome, 'reducerGcs'>;
        else if (report && line.includes('Memory reducer:')) {
          if (line.includes('started GC')) reducerGcs++;
          finishing ??= setTimeout(() => child.kill(), 1_500);
        }
      });
      child.on('exit', () => {
        clearTimeout(deadline);
        clearTimeout(finishing);
        if (!report) reject(new Error(`no report; stderr: ${stderr.slice(0, 2000)}`));
        else if (finishing === undefined) reject(new Error('V8\'s memory reducer never woke within 45 s'));
        else resolve({ ...report, reducerGcs });
      });
    });

  it('on the image’s Node.js, returns the heap at once and V8’s memory reducer stands down', { timeout: 90_000 }, async () => {
    const [handedOver, v8Alone] = await Promise.all([run(true), run(false)]);
    expect(handedOver.compactor).toBe('function');
    expect(handedOver.after).toBeLessThan(handedOver.before * 0.6);
    expect(handedOver.reducerGcs).toBe(0);
    expect(v8Alone.compactor).toBe('undefined');
    expect(v8Alone.reducerGcs).toBeGreaterThan(0);
  });
});
