/**
 * What the API server stores and enforces for Portico's CRDs: defaults and x-kubernetes markers
 * survive the YAML layer, every field is described (kubectl explain), a third party's CRD with
 * `default` keys applies, and bad address pools fail at apply time while the examples pass.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCrdFiles } from '../../src/api/render.js';
import { applyYaml, objectPath, parseManifests, type Manifest } from '../../src/kube/apply.js';
import { isKubeError, type KubeApiError } from '../../src/kube/rest.js';
import { installCrds, readExample } from '../support/controller.js';
import { testClient } from '../support/kube.js';

const client = testClient();
const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const POOLS = '/apis/portico.dev/v1alpha1/addresspools';
const suffix = Math.random().toString(16).slice(2, 8);
const created: string[] = [];

type Schema = { type?: string; description?: string; default?: unknown; properties?: Record<string, Schema>; items?: Schema; additionalProperties?: Schema | boolean; [key: string]: unknown };
interface StoredCrd {
  spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/** Paths of schema nodes without a description (metadata is the API server's own). */
function undescribed(schema: Schema, path: string): string[] {
  const missing = schema.description ? [] : [path];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    if (path === '' && name === 'metadata') continue;
    missing.push(...undescribed(child, `${path}.${name}`));
  }
  if (schema.items) missing.push(...undescribed(schema.items, `${path}[]`));
  return missing;
}

async function storedSchema(name: string): Promise<Schema> {
  const crd = await client.request<StoredCrd>('GET', `${CRD_PATH}/${name}`);
  const schema = crd.spec.versions[0]?.schema.openAPIV3Schema;
  if (!schema) throw new Error(`${name} has no schema`);
  return schema;
}

/** Creates a pool (server-side dry run unless `keep`); resolves to the error the server answered, if any. */
async function createPool(name: string, spec: Record<string, unknown>, keep = false): Promise<KubeApiError | undefined> {
  try {
    await client.request('POST', POOLS, { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec }, query: keep ? {} : { dryRun: 'All' } });
    if (keep) created.push(name);
    return undefined;
  } catch (error) {
    if (isKubeError(error)) return error;
    throw error;
  }
}

beforeAll(async () => {
  await installCrds(client);
});

afterAll(async () => {
  for (const name of created) await client.request('DELETE', `${POOLS}/${name}`).catch(() => undefined);
  await client.request('DELETE', `${CRD_PATH}/ipaddresspools.thirdparty.example.com`).catch(() => undefined);
});

describe('the AddressPool CRD as the API server stores it', () => {
  it('keeps the defaults and x-kubernetes markers declared in src/api/crds.ts', async () => {
    const schema = await storedSchema('addresspools.portico.dev');
    const spec = schema.properties?.spec?.properties ?? {};
    expect(spec.autoAssign?.default).toBe(true);
    expect(spec.avoidBuggyIPs?.default).toBe(false);
    expect(spec.addresses?.['x-kubernetes-list-type']).toBe('set');
    const rules = (spec.addresses?.items?.['x-kubernetes-validations'] ?? []) as { rule: string }[];
    expect(rules.some((r) => r.rule.includes('isCIDR(self)'))).toBe(true);
    expect(spec.allocation?.properties?.namespaceSelector?.['x-kubernetes-map-type']).toBe('atomic');
    expect(schema.properties?.status?.properties?.conditions?.['x-kubernetes-list-map-keys']).toEqual(['type']);
  });

  it('describes every field', async () => {
    expect(undescribed(await storedSchema('addresspools.portico.dev'), '')).toEqual([]);
  });

  it('fills in autoAssign and avoidBuggyIPs for a pool that leaves them out', async () => {
    const name = `defaults-${suffix}`;
    expect(await createPool(name, { addresses: ['192.0.2.64/29'] }, true)).toBeUndefined();
    const pool = await client.request<{ spec: { autoAssign?: boolean; avoidBuggyIPs?: boolean } }>('GET', `${POOLS}/${name}`);
    expect(pool.spec).toMatchObject({ autoAssign: true, avoidBuggyIPs: false });
  });
});

describe('a third party CRD whose schema has `default` keys', () => {
  it('applies through Portico’s YAML reader and is stored with its defaults', async () => {
    const text = await readFile(new URL('fixtures/third-party-crd.yaml', import.meta.url), 'utf8');
    expect(JSON.stringify(parseManifests(text))).not.toContain('_default');
    await applyYaml(client, text);
    const spec = (await storedSchema('ipaddresspools.thirdparty.example.com')).properties?.spec?.properties ?? {};
    expect(spec.autoAssign?.default).toBe(true);
    expect(spec.avoidBuggyIPs?.default).toBe(false);
    expect(spec.serviceAllocation?.['x-kubernetes-map-type']).toBe('atomic');
  });
});

describe('AddressPool validation at apply time', () => {
  // [entry or entries, what the API server's message must say]
  const bad: [string, unknown, string][] = [
    ['an empty list', [], 'should have at least 1 items'],
    ['a bare address', ['192.0.2.7'], 'neither a CIDR'],
    ['a CIDR typo', ['192.0.2.0/33'], 'not a valid CIDR'],
    ['an octet out of range', ['192.0.2.300/32'], 'not a valid CIDR'],
    ['host bits', ['192.0.2.5/24'], 'has host bits set'],
    ['IPv6 host bits', ['2001:db8::1/64'], 'has host bits set'],
    ['a reversed range', ['192.0.2.30-192.0.2.10'], 'is reversed'],
    ['a reversed IPv6 range', ['2001:db8::ff-2001:db8::1'], 'is reversed'],
    ['a reversed range differing in the last bit', ['192.0.2.11-192.0.2.10'], 'is reversed'],
    ['a range with a typo', ['192.0.2.10-192.0.2'], 'not a valid range'],
    ['a range with three parts', ['192.0.2.1-192.0.2.2-192.0.2.3'], 'not a valid range'],
    ['a mixed-family range', ['192.0.2.1-2001:db8::1'], 'mixes IPv4 and IPv6'],
    ['whitespace', ['192.0.2.0/24 '], 'should match'],
    ['a duplicate entry', ['192.0.2.0/28', '192.0.2.0/28'], 'Duplicate value'],
  ];
  it.each(bad)('rejects %s', async (_what, addresses, message) => {
    const error = await createPool(`bad-${suffix}`, { addresses });
    expect(error?.status, `accepted ${JSON.stringify(addresses)}`).toBe(422);
    expect(error?.message).toContain(message);
  });

  it('rejects In without values in a selector', async () => {
    const error = await createPool(`bad-${suffix}`, { addresses: ['192.0.2.0/28'], allocation: { serviceSelector: { matchExpressions: [{ key: 'tier', operator: 'In' }] } } });
    expect(error?.status).toBe(422);
    expect(error?.message).toContain('operator In needs at least one value');
  });

  const good: [string, string[]][] = [
    ['IPv4 and IPv6 CIDRs', ['192.0.2.0/28', '2001:db8::/120', '198.51.100.7/32', '2001:db8::7/128']],
    ['ranges, including one address long', ['192.0.2.10-192.0.2.20', '192.0.2.40-192.0.2.40', '2001:db8:cafe::10-2001:db8:cafe::30', '2001:db8::1-2001:db8::1:0']],
    ['a range across an octet boundary', ['192.0.2.250-192.0.3.5']],
  ];
  it.each(good)('accepts %s', async (_what, addresses) => {
    expect(await createPool(`good-${suffix}`, { addresses })).toBeUndefined();
  });

  it('accepts every example pool', async () => {
    const pools: Manifest[] = [];
    for (const file of ['l2/address-pool.yaml', 'l2/tenant-pool.yaml']) pools.push(...parseManifests(await readExample(file)).filter((m) => m.kind === 'AddressPool'));
    expect(pools.length).toBeGreaterThanOrEqual(2);
    for (const pool of pools) {
      await expect(client.request('PATCH', objectPath(pool), { body: pool, patchType: 'apply', query: { fieldManager: 'portico-test', dryRun: 'All', force: true } })).resolves.toBeDefined();
    }
  });
});

describe('the generated CRD files', () => {
  it('parse back to exactly the objects src/api/crds.ts declares', async () => {
    const { allCrds } = await import('../../src/api/crds.js');
    const rendered = renderCrdFiles();
    for (const [file, crd] of Object.entries(allCrds())) expect(parseManifests(rendered[file] ?? '')).toEqual([crd]);
  });
});
