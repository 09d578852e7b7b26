/**
 * The examples keep load-balancer addresses and external endpoints apart: no external backend
 * address (Endpoints, EndpointSlices) lies inside an example AddressPool, so the demo never gives
 * a LoadBalancer the address of something outside the cluster; and every address a Service asks
 * for does lie inside one.
 */
import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseAddressRange, parseIP, rangeContains, type IPRange } from '../../src/ipam/ip.js';
import { parseManifests, type Manifest } from '../../src/kube/apply.js';

const examplesDir = new URL('../../examples/', import.meta.url);

async function allExamples(): Promise<{ file: string; manifest: Manifest }[]> {
  const files = (await readdir(examplesDir, { recursive: true })).filter((f) => /\.ya?ml$/.test(f)).sort();
  const out: { file: string; manifest: Manifest }[] = [];
  for (const file of files) for (const manifest of parseManifests(await readFile(new URL(file, examplesDir), 'utf8'))) out.push({ file, manifest });
  return out;
}

interface Endpoints {
  subsets?: { addresses?: { ip: string }[]; notReadyAddresses?: { ip: string }[] }[];
}
interface EndpointSlice {
  endpoints?: { addresses: string[] }[];
}

function externalAddresses(manifest: Manifest): string[] {
  if (manifest.kind === 'Endpoints') return ((manifest as Manifest & Endpoints).subsets ?? []).flatMap((s) => [...(s.addresses ?? []), ...(s.notReadyAddresses ?? [])].map((a) => a.ip));
  if (manifest.kind === 'EndpointSlice') return ((manifest as Manifest & EndpointSlice).endpoints ?? []).flatMap((e) => e.addresses);
  return [];
}

describe('examples/', () => {
  it('puts no external endpoint inside an example AddressPool', async () => {
    const examples = await allExamples();
    const pools: { file: string; name: string; range: IPRange }[] = examples
      .filter(({ manifest }) => manifest.kind === 'AddressPool')
      .flatMap(({ file, manifest }) => ((manifest as Manifest & { spec: { addresses: string[] } }).spec.addresses).map((a) => ({ file, name: manifest.metadata.name, range: parseAddressRange(a) })));
    const externals = examples.flatMap(({ file, manifest }) => externalAddresses(manifest).map((ip) => ({ file, ip })));
    expect(pools.length).toBeGreaterThan(0);
    expect(externals.map((e) => e.ip)).toContain('192.0.2.10');
    const clashes = externals.flatMap(({ file, ip }) => pools.filter((p) => rangeContains(p.range, parseIP(ip))).map((p) => `${file}: ${ip} is inside pool ${p.name} (${p.file})`));
    expect(clashes).toEqual([]);
  });

  it('asks only for load-balancer addresses that an example pool holds', async () => {
    const examples = await allExamples();
    const ranges = examples.filter(({ manifest }) => manifest.kind === 'AddressPool').flatMap(({ manifest }) => (manifest as Manifest & { spec: { addresses: string[] } }).spec.addresses.map(parseAddressRange));
    const requested = examples.flatMap(({ file, manifest }) =>
      (manifest.metadata.annotations as Record<string, string> | undefined)?.['portico.dev/load-balancer-ips']?.split(',').map((ip) => ({ file, ip: ip.trim() })) ?? [],
    );
    expect(requested.length).toBeGreaterThan(0);
    for (const { file, ip } of requested) expect(ranges.some((r) => rangeContains(r, parseIP(ip))), `${file}: ${ip}`).toBe(true);
  });
});
