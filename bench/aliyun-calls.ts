/**
 * aliyun-calls: SLB API calls per Service on the SLB fake, through the real openapi-core stack.
 *
 *   npm run bench -- aliyun-calls [--services=50] [--nodes=3] [--workers=4]
 *
 * 1. create: `services` Services (one TCP port each) are ensured, `workers` at a time (the
 *    controller's default concurrency), against `nodes` nodes;
 * 2. resync: a fresh provider (a restarted controller: nothing cached) ensures every Service
 *    again with nothing changed, `workers` at a time.
 * Writes bench/results/aliyun-calls.json: services, createCallsPerService, resyncMutatingCalls,
 * resyncDescribeCalls (target: 0 and at most 3 x ceil(services / 20) + 5), calls per action, date
 * and machine. The fake runs in this process on loopback; nothing leaves the machine.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { systemClock } from '../src/kube/clock.js';
import { SlbClient } from '../src/providers/aliyun/client.js';
import { AliyunSlbProvider } from '../src/providers/aliyun/provider.js';
import { OpenApiCaller, RetryingCaller } from '../src/providers/aliyun/transport.js';
import type { ProviderContext } from '../src/providers/provider.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, FakeSlbServer, MUTATING_ACTIONS } from '../test/fakes/slb-server.js';
import { forEachLimit, machine, round, table, UsageError } from './support/util.js';

export const description = 'SLB API calls: N Services created on the SLB fake, then a full re-ensure with nothing changed (target: 0 writes)';

function intFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name}=${value}: expected a positive integer`);
  return n;
}

function service(i: number): V1Service {
  return {
    metadata: { namespace: 'bench', name: `svc-${String(i)}`, uid: `uid-${String(i)}` },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30000 + i, protocol: 'TCP' }] },
  };
}

function provider(fake: FakeSlbServer, endpoint: string): AliyunSlbProvider {
  const inner = new OpenApiCaller({ regionId: fake.regionId, endpoint, protocol: 'http', accessKey: { id: FAKE_ACCESS_KEY_ID, secret: FAKE_ACCESS_KEY_SECRET } });
  const slb = new SlbClient(new RetryingCaller({ inner, clock: systemClock, registry: new Registry() }), fake.regionId);
  return new AliyunSlbProvider({ slb, clusterName: 'bench', clock: systemClock, logger: pino({ level: 'silent' }) });
}

function tally(fake: FakeSlbServer): Record<string, number> {
  const out: Record<string, number> = {};
  for (const call of fake.calls) out[call.action] = (out[call.action] ?? 0) + 1;
  return out;
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { services: { type: 'string' }, nodes: { type: 'string' }, workers: { type: 'string' } }, strict: true });
  const services = intFlag(values.services, 'services', 50);
  const nodeCount = intFlag(values.nodes, 'nodes', 3);
  const workers = intFlag(values.workers, 'workers', 4);
  const nodes: V1Node[] = Array.from({ length: nodeCount }, (_, i) => ({ metadata: { name: `n${String(i)}` }, spec: { providerID: `cn-hangzhou.i-bench${String(i)}` } }));
  const backends = { nodes, endpointSlices: [] };
  const ctx: ProviderContext = { signal: new AbortController().signal, logger: pino({ level: 'silent' }), events: { record: () => undefined } };
  const list = Array.from({ length: services }, (_, i) => service(i));

  const fake = new FakeSlbServer();
  const endpoint = await fake.start();
  try {
    let started = performance.now();
    const creator = provider(fake, endpoint);
    await forEachLimit(list, workers, async (s) => {
      await creator.ensure(ctx, s, backends);
    });
    const createSeconds = (performance.now() - started) / 1000;
    const createCalls = tally(fake);
    const createTotal = fake.calls.length;
    if (fake.loadBalancers.size !== services) throw new Error(`expected ${String(services)} CLBs, found ${String(fake.loadBalancers.size)}`);

    fake.resetCalls();
    started = performance.now();
    const restarted = provider(fake, endpoint);
    await forEachLimit(list, workers, async (s) => {
      await restarted.ensure(ctx, s, backends);
    });
    const resyncSeconds = (performance.now() - started) / 1000;
    const resyncCalls = tally(fake);
    const resyncMutatingCalls = fake.calls.filter((c) => MUTATING_ACTIONS.has(c.action)).length;
    const resyncDescribeCalls = fake.calls.filter((c) => c.action.startsWith('Describe')).length;
    const target = 3 * Math.ceil(services / 20) + 5;

    const result = {
      services,
      createCallsPerService: round(createTotal / services, 2),
      resyncMutatingCalls,
      resyncDescribeCalls,
      resyncDescribeTarget: target,
      nodes: nodeCount,
      workers,
      createSeconds: round(createSeconds, 3),
      resyncSeconds: round(resyncSeconds, 3),
      createCallsByAction: createCalls,
      resyncCallsByAction: resyncCalls,
      date: new Date().toISOString(),
      machine: machine(),
    };
    process.stdout.write(
      `${table([
        ['services', 'create calls / Service', 'resync writes', 'resync describes', `describe target (<= ${String(target)})`, 'create s', 'resync s'],
        [String(services), String(result.createCallsPerService), String(resyncMutatingCalls), String(resyncDescribeCalls), resyncDescribeCalls <= target && resyncMutatingCalls === 0 ? 'met' : 'MISSED', String(result.createSeconds), String(result.resyncSeconds)],
      ])}\n\ncreate calls by action: ${JSON.stringify(createCalls)}\n`,
    );
    const out = fileURLToPath(new URL('./results/aliyun-calls.json', import.meta.url));
    await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await fake.stop();
  }
}
