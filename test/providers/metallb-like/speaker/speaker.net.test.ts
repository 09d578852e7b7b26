/**
 * Real `portico speaker` processes in three node namespaces on one bridge, a client namespace
 * as the outside observer (arping, ping, `ip neigh`), and the real API server, reached from
 * each node namespace through a relay on its loopback (support/lan.ts). Needs root and
 * iproute2/iputils; otherwise skipped with the reason printed.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, testClient } from '../../../support/kube.js';
import { installCrds } from '../../../support/controller.js';
import { isKubeError, type RestClient } from '../../../../src/kube/rest.js';
import { rankNodes } from '../../../../src/providers/metallb-like/speaker/election.js';
import { ANNOUNCED_CONDITION } from '../../../../src/providers/metallb-like/speaker/speaker.js';
import {
  arpingMacs,
  createLan,
  flushNeighbours,
  netUnavailableReason,
  neighbourMac,
  resolveFromClient,
  startSpeaker,
  stopSpeaker,
  type Lan,
  type LanNode,
  type SpeakerProcess,
} from './support/lan.js';

const reason = netUnavailableReason();
if (reason) process.stderr.write(`\n!!! SKIPPED speaker.net.test.ts: ${reason}\n\n`);

interface ServiceObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

describe.skipIf(reason !== undefined)('portico speaker on a LAN of network namespaces', () => {
  let lan: Lan;
  let client: RestClient;
  const namespace = `spk-${Math.random().toString(16).slice(2, 8)}`;
  const speakers = new Map<string, SpeakerProcess>();
  const poolName = `${namespace}-pool`;

  const node = (name: string): LanNode => {
    const found = lan.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node ${name}`);
    return found;
  };

  async function service(name: string, ips: string[], options: { local?: boolean; selectorless?: boolean } = {}): Promise<void> {
    await client.request('POST', `/api/v1/namespaces/${namespace}/services`, {
      body: {
        metadata: { name },
        spec: {
          type: 'LoadBalancer',
          loadBalancerClass: 'portico.dev/l2',
          externalTrafficPolicy: options.local ? 'Local' : 'Cluster',
          ...(options.selectorless ? {} : { selector: { app: name } }),
          ports: [{ name: 'p', port: 80 + Math.floor(Math.random() * 1000), protocol: 'TCP' }],
        },
      },
    });
    await client.request('PATCH', `/api/v1/namespaces/${namespace}/services/${name}/status`, {
      body: { status: { loadBalancer: { ingress: ips.map((ip) => ({ ip, ipMode: 'VIP' })) } } },
      patchType: 'merge',
    });
  }

  async function slice(service: string, nodeName: string): Promise<void> {
    const body = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service}-manual`, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'test.portico.dev' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.51.100.7'], nodeName, conditions: { ready: true } }],
      ports: [{ name: 'p', port: 8080, protocol: 'TCP' }],
    };
    try {
      const existing = await client.request<{ metadata: { resourceVersion: string } }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices/${service}-manual`);
      await client.request('PUT', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices/${service}-manual`, { body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } } });
    } catch (error) {
      if (!isKubeError(error, 404)) throw error;
      await client.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, { body });
    }
  }

  async function condition(name: string): Promise<string | undefined> {
    const svc = await client.request<ServiceObject>('GET', `/api/v1/namespaces/${namespace}/services/${name}`);
    return svc.status?.conditions?.find((c) => c.type === ANNOUNCED_CONDITION && c.status === 'True')?.message;
  }

  /** The node every speaker must elect for `ip` while `alive` are the running speakers. */
  const expected = (ip: string, alive: string[]): LanNode => node(rankNodes(ip, alive)[0] ?? '');

  beforeAll(async () => {
    client = testClient();
    lan = await createLan({ nodes: 3, kubeconfigPath: inject('kubeconfig') });
    await installCrds(client);
    await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: namespace } } });
    for (const n of lan.nodes) {
      await client.request('POST', '/api/v1/nodes', { body: { metadata: { name: n.name, labels: { 'portico.dev/test': 'speaker' } } } });
      await client.request('PATCH', `/api/v1/nodes/${n.name}/status`, {
        body: { status: { addresses: [{ type: 'InternalIP', address: n.ipv4 }, { type: 'InternalIP', address: n.ipv6 }], conditions: [{ type: 'Ready', status: 'True', reason: 'Test', message: 'test node', lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] } },
        patchType: 'strategic',
      });
    }
    await client.request('POST', '/apis/portico.dev/v1alpha1/addresspools', {
      body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['192.0.2.200-192.0.2.220', '2001:db8:2::200-2001:db8:2::220'] } },
    });
    for (const n of lan.nodes) speakers.set(n.name, startSpeaker(lan, n, namespace));
    // Every speaker holds its lease before the tests start.
    await eventually(async () => {
      const leases = await client.request<{ items: unknown[] }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`);
      return leases.items.length === lan.nodes.length ? true : undefined;
    }, 'every speaker holds its lease', 60_000).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}\n${await speakerLogs()}`);
    });
  }, 180_000);

  afterAll(async () => {
    await Promise.all([...speakers.values()].map((s) => stopSpeaker(s)));
    // beforeAll may have failed part-way: clean up what exists.
    const made = lan as Lan | undefined;
    for (const n of made?.nodes ?? []) await client.request('DELETE', `/api/v1/nodes/${n.name}`).catch(() => undefined);
    await client.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`).catch(() => undefined);
    await client.request('DELETE', `/api/v1/namespaces/${namespace}`).catch(() => undefined);
    await made?.destroy();
  }, 60_000);

  /** The last lines of every speaker's log, for failure messages. */
  async function speakerLogs(): Promise<string> {
    const parts: string[] = [];
    for (const s of speakers.values()) parts.push(`--- ${s.node}\n${(await readFile(s.log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n')}`);
    return parts.join('\n');
  }

  const allNodes = (): string[] => lan.nodes.map((n) => n.name);

  it('answers ARP for a pool address only from the elected node, and not at all outside the pools', async () => {
    await service('web', ['192.0.2.200']);
    await service('stray', ['192.0.2.250']);
    const elected = expected('192.0.2.200', allNodes());
    const macs = await eventually(async () => {
      const found = await arpingMacs(lan, '192.0.2.200');
      return found.length > 0 ? found : undefined;
    }, 'an ARP reply for 192.0.2.200', 30_000);
    expect(macs).toEqual([elected.mac]);
    expect(await arpingMacs(lan, '192.0.2.200', 3)).toEqual([elected.mac]);
    expect(await arpingMacs(lan, '192.0.2.250')).toEqual([]);
    const message = await eventually(() => condition('web'), 'the L2Announced condition on web');
    expect(message).toBe(`192.0.2.200 announced by node ${elected.name} on eth0`);
    const events = await client.request<{ items: { reason: string; message: string }[] }>('GET', `/api/v1/namespaces/${namespace}/events`, { query: { fieldSelector: 'involvedObject.name=web' } });
    expect(events.items.some((e) => e.reason === 'nodeAssigned' && e.message.includes(elected.name))).toBe(true);
  });

  it('announces two Services sharing one address from the same node', async () => {
    await service('shared-a', ['192.0.2.201']);
    await service('shared-b', ['192.0.2.201']);
    const elected = expected('192.0.2.201', allNodes());
    const a = await eventually(() => condition('shared-a'), 'condition on shared-a');
    const b = await eventually(() => condition('shared-b'), 'condition on shared-b');
    expect(a).toContain(`node ${elected.name} `);
    expect(b).toBe(a);
    expect(await arpingMacs(lan, '192.0.2.201', 3)).toEqual([elected.mac]);
  });

  it('resolves a pool IPv6 address to the elected node with NDP', async () => {
    await service('web6', ['2001:db8:2::200']);
    const elected = expected('2001:db8:2::200', allNodes());
    const mac = await eventually(async () => {
      await resolveFromClient(lan, '2001:db8:2::200');
      return neighbourMac(lan, '2001:db8:2::200');
    }, 'the client to resolve 2001:db8:2::200', 30_000);
    expect(mac).toBe(elected.mac);
  });

  it('follows the ready endpoint for externalTrafficPolicy Local', async () => {
    const ip = '192.0.2.205';
    const ranked = rankNodes(ip, allNodes());
    // Start on the node ranked last, so only the endpoint can explain the choice.
    const first = ranked[2] ?? '';
    const second = ranked[1] ?? '';
    await service('local', [ip], { local: true, selectorless: true });
    expect(await arpingMacs(lan, ip)).toEqual([]); // no ready endpoint: nobody answers
    const svc = await eventually(async () => {
      const found = await client.request<ServiceObject>('GET', `/api/v1/namespaces/${namespace}/services/local`);
      return found.status?.conditions?.find((c) => c.type === ANNOUNCED_CONDITION && c.status === 'False');
    }, 'the condition saying why nobody announces');
    expect(svc.message).toContain('no node has a ready endpoint');
    await slice('local', first);
    const mac = await eventually(async () => {
      await resolveFromClient(lan, ip);
      return neighbourMac(lan, ip);
    }, `the client to resolve ${ip}`, 30_000);
    expect(mac).toBe(node(first).mac);
    await slice('local', second);
    // The client does not ask again: the gratuitous ARP moves its entry.
    await eventually(async () => ((await neighbourMac(lan, ip)) === node(second).mac ? true : undefined), `${ip} to move to ${second}`, 15_000, 50);
    expect(await arpingMacs(lan, ip, 3)).toEqual([node(second).mac]);
  });

  it('moves the address to the runner-up when the elected speaker is killed, without the client asking', async () => {
    const ip = '192.0.2.200';
    const [winner, runnerUp] = rankNodes(ip, allNodes());
    await resolveFromClient(lan, ip);
    expect(await neighbourMac(lan, ip)).toBe(node(winner ?? '').mac);
    const victim = speakers.get(winner ?? '');
    if (!victim) throw new Error('no speaker');
    await stopSpeaker(victim, 'SIGKILL');
    await eventually(async () => ((await neighbourMac(lan, ip)) === node(runnerUp ?? '').mac ? true : undefined), `${ip} to move to ${runnerUp ?? ''}`, 15_000, 50);
    expect(await arpingMacs(lan, ip, 3)).toEqual([node(runnerUp ?? '').mac]);
    await eventually(async () => ((await condition('web'))?.includes(`node ${runnerUp ?? ''} `) ? true : undefined), 'the condition to name the runner-up');

    // Restarted, the first-ranked node takes the address back, and the client follows.
    speakers.set(winner ?? '', startSpeaker(lan, node(winner ?? ''), namespace));
    await eventually(async () => ((await neighbourMac(lan, ip)) === node(winner ?? '').mac ? true : undefined), `${ip} to move back to ${winner ?? ''}`, 30_000, 50);
    await eventually(async () => {
      const macs = await arpingMacs(lan, ip, 2);
      return macs.length === 1 && macs[0] === node(winner ?? '').mac ? true : undefined;
    }, 'only the restarted node to answer', 15_000);
  });

  it('a speaker cut off from the API goes silent, and the runner-up takes over', async () => {
    const ip = '192.0.2.200';
    const [winner = '', runnerUp = ''] = rankNodes(ip, allNodes());
    await resolveFromClient(lan, ip);
    expect(await neighbourMac(lan, ip)).toBe(node(winner).mac);
    lan.cutApi(winner, true);
    try {
      // Its next renewal (within 10 s) fails, then its runner-up takes over after the probe timeout.
      await eventually(async () => ((await neighbourMac(lan, ip)) === node(runnerUp).mac ? true : undefined), `${ip} to move to ${runnerUp}`, 30_000, 100);
      expect(await arpingMacs(lan, ip, 3)).toEqual([node(runnerUp).mac]);
    } finally {
      lan.cutApi(winner, false);
    }
    await eventually(async () => ((await neighbourMac(lan, ip)) === node(winner).mac ? true : undefined), `${ip} to return to ${winner} with the API back`, 30_000, 100);
    // The hand-back overlaps for a moment while the runner-up's watch catches up (docs/speaker.md,
    // "Why two nodes cannot answer"); it must end: only the winner answers.
    await eventually(async () => {
      const macs = await arpingMacs(lan, ip, 2);
      return macs.length === 1 && macs[0] === node(winner).mac ? true : undefined;
    }, `only ${winner} to answer for ${ip} after the hand-back`, 15_000);
  });

  it('SIGTERM releases the addresses and the Lease at once', async () => {
    const ip = '192.0.2.200';
    const [winner = '', runnerUp = ''] = rankNodes(ip, allNodes());
    // A runner-up's last gratuitous ARP from the hand-back above may still be in the client's cache.
    await flushNeighbours(lan);
    await resolveFromClient(lan, ip);
    expect(await neighbourMac(lan, ip)).toBe(node(winner).mac);
    const speaker = speakers.get(winner);
    if (!speaker) throw new Error('no speaker');
    await stopSpeaker(speaker, 'SIGTERM');
    expect(await speaker.exited).toBe(0);
    const lease = await client.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/portico-speaker-${winner}`).catch((error: unknown) => (isKubeError(error, 404) ? 'gone' : error));
    expect(lease).toBe('gone');
    await eventually(async () => ((await neighbourMac(lan, ip)) === node(runnerUp).mac ? true : undefined), `${ip} to move to ${runnerUp}`, 15_000, 50);
  });
});
