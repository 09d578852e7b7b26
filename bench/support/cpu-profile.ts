/**
 * In-process CPU profiling of one phase through the inspector protocol, plus a summary by
 * function (self time) and by where the code lives (src/…, a node_modules package, Node itself).
 */
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface CpuSummary {
  totalMs: number;
  /** Self time by function, top entries. */
  functions: { name: string; selfMs: number; percent: number }[];
  /** Self time by where the code lives. */
  areas: { area: string; selfMs: number; percent: number }[];
  /** Inclusive time of the entries of interest (function name matches), top entries. */
  inclusive: { name: string; totalMs: number; percent: number }[];
}

export async function startCpuProfile(): Promise<{ stop(): Promise<CpuProfile> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
      await session.post('Profiler.disable');
      session.disconnect();
      return profile;
    },
  };
}

function location(frame: CallFrame, root: string): string {
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return '';
  const file = url.startsWith('/') ? relative(root, url) : url;
  // tsx-compiled modules report line 0 for everything (no source maps in the profiler).
  return frame.lineNumber > 0 ? `${file}:${String(frame.lineNumber + 1)}` : file;
}

function area(frame: CallFrame, root: string): string {
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return frame.functionName === '(garbage collector)' ? '(gc)' : frame.functionName || '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] ?? ''}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  const file = relative(root, url);
  return file.split('/').slice(0, 2).join('/');
}

/** `interesting` picks functions whose inclusive time is reported (e.g. reconcile, JSON.parse). */
export function summarize(profile: CpuProfile, root: string, top = 25, interesting: RegExp = /./): CpuSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0) / 1000));
  const totalMs = [...self.values()].reduce((a, b) => a + b, 0);
  const pct = (ms: number): number => Math.round((1000 * ms) / Math.max(totalMs, 1)) / 10;

  const fnSelf = new Map<string, number>();
  const areaSelf = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const name = `${node.callFrame.functionName || '(anonymous)'} ${location(node.callFrame, root)}`.trim();
    fnSelf.set(name, (fnSelf.get(name) ?? 0) + ms);
    const a = area(node.callFrame, root);
    areaSelf.set(a, (areaSelf.get(a) ?? 0) + ms);
  }

  // Inclusive time per function name, counting each stack once even under recursion.
  const inclusive = new Map<string, number>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (const [id, ms] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (!node) break;
      const name = `${node.callFrame.functionName || '(anonymous)'} ${location(node.callFrame, root)}`.trim();
      if (!interesting.test(name) || seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + ms);
    }
  }

  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort(([, a], [, b]) => b - a);
  return {
    totalMs: Math.round(totalMs),
    functions: sorted(fnSelf).slice(0, top).map(([name, ms]) => ({ name, selfMs: Math.round(ms), percent: pct(ms) })),
    areas: sorted(areaSelf).slice(0, top).map(([a, ms]) => ({ area: a, selfMs: Math.round(ms), percent: pct(ms) })),
    inclusive: sorted(inclusive).slice(0, top).map(([name, ms]) => ({ name, totalMs: Math.round(ms), percent: pct(ms) })),
  };
}
