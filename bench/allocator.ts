/**
 * `npm run bench -- allocator`: the pure allocator with 20,000 Services in 2 pools, once without
 * sharing keys, once with a unique key each, and 10,000 Services with one key whose ports all
 * clash (none can share). Several rounds, alternating order; the median of each is reported.
 *
 * Writes bench/results/allocator.json: { services, unkeyedMs, keyedMs, sameKeyClashMs, ... }.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Allocator } from '../src/ipam/allocator.js';
import { isParsedPool, parsePool, type ParsedPool } from '../src/ipam/pool.js';
import type { AllocationRequest } from '../src/ipam/request.js';
import { machine, median, round, table } from './support/util.js';

export const description = 'pure allocator: 20,000 Services unkeyed vs unique sharing keys vs one clashing key';

const SERVICES = 20_000;
const CLASH_SERVICES = 10_000;
const ROUNDS = 5;

function pool(name: string, addresses: string[], priority: number): ParsedPool {
  const parsed = parsePool({ apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec: { addresses, allocation: { priority } } });
  if (!isParsedPool(parsed)) throw new Error(`bad pool ${name}`);
  return parsed;
}

function request(i: number, sharingKey: string | undefined, port: number): AllocationRequest {
  return {
    key: `bench/svc-${String(i)}`,
    namespace: 'bench',
    namespaceLabels: {},
    serviceLabels: {},
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    requestedIPs: [],
    requestedPool: undefined,
    sharingKey,
    ports: [{ port, protocol: 'TCP' }],
    backendKey: '',
  };
}

/** Milliseconds to assign `count` Services; fails loudly if any allocation fails. */
function timeAllocations(count: number, make: (i: number) => AllocationRequest): number {
  const allocator = new Allocator();
  // Two pools of 16,384 addresses each (benchmarking range, in memory only): 20,000 Services spill into the second.
  allocator.setPools([pool('first', ['198.18.0.0/18'], 0), pool('second', ['198.19.0.0/18'], 1)]);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const result = allocator.assign(make(i));
    if (!result.ok) throw new Error(`allocation ${String(i)} failed: ${result.reason}: ${result.message}`);
  }
  return performance.now() - started;
}

export async function run(): Promise<void> {
  const samples = { unkeyed: [] as number[], keyed: [] as number[], clash: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (['unkeyed', 'keyed', 'clash'] as const) : (['clash', 'keyed', 'unkeyed'] as const);
    for (const which of order) {
      if (which === 'unkeyed') samples.unkeyed.push(timeAllocations(SERVICES, (i) => request(i, undefined, 80)));
      if (which === 'keyed') samples.keyed.push(timeAllocations(SERVICES, (i) => request(i, `key-${String(i)}`, 80)));
      if (which === 'clash') samples.clash.push(timeAllocations(CLASH_SERVICES, (i) => request(i, 'one-key', 80)));
    }
  }
  const result = {
    services: SERVICES,
    unkeyedMs: round(median(samples.unkeyed), 1),
    keyedMs: round(median(samples.keyed), 1),
    sameKeyClashMs: round(median(samples.clash), 1),
    sameKeyClashServices: CLASH_SERVICES,
    keyedOverUnkeyed: round(median(samples.keyed) / median(samples.unkeyed), 2),
    rounds: ROUNDS,
    samplesMs: { unkeyed: samples.unkeyed.map((v) => round(v, 1)), keyed: samples.keyed.map((v) => round(v, 1)), sameKeyClash: samples.clash.map((v) => round(v, 1)) },
    targets: { keyedMs: '<= 10 x unkeyedMs and <= 2000' },
    machine: machine(),
    date: new Date().toISOString(),
  };
  process.stdout.write(
    `${table([
      ['case', 'services', 'median ms', 'per round (ms)'],
      ['no sharing keys', String(SERVICES), String(result.unkeyedMs), result.samplesMs.unkeyed.join(', ')],
      ['unique key each', String(SERVICES), String(result.keyedMs), result.samplesMs.keyed.join(', ')],
      ['one key, clashing ports', String(CLASH_SERVICES), String(result.sameKeyClashMs), result.samplesMs.sameKeyClash.join(', ')],
    ])}\nkeyed / unkeyed = ${String(result.keyedOverUnkeyed)} (target <= 10, and keyed <= 2000 ms)\n`,
  );
  await mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await writeFile(new URL('./results/allocator.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
}
