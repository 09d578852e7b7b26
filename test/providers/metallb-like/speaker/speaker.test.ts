/** The speaker loop with fakes: API writes it makes (and does not make), and going silent. */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from '../../../../hack/control-plane.js';
import type { KubeClient, RequestParams } from '../../../../src/kube/rest.js';
import { KubeApiError } from '../../../../src/kube/rest.js';
import { Speaker, SPEAKER_PATHS } from '../../../../src/providers/metallb-like/speaker/speaker.js';
import { ETHERTYPE_ARP } from '../../../../src/providers/metallb-like/speaker/frames.js';
import { FakeClock } from '../../../fakes/clock.js';
import { FakeFrameSockets } from '../../../fakes/frame-sockets.js';
import { FakeInformers } from '../../../fakes/informers.js';
import { eventually } from '../../../support/kube.js';

/** Records requests; answers with the body (or `{}`), or fails while `failing` is set. */
class FakeApi implements KubeClient {
  readonly requests: { method: string; path: string; body: unknown }[] = [];
  failing = false;

  request<T>(method: string, path: string, params: RequestParams = {}): Promise<T> {
    this.requests.push({ method, path, body: params.body });
    if (this.failing) return Promise.reject(new KubeApiError(0, 'ConnectionFailed', 'connection refused'));
    return Promise.resolve((params.body ?? {}) as T);
  }

  watch(): Promise<void> {
    return Promise.reject(new Error('not used'));
  }

  writes(filter: (path: string) => boolean): number {
    return this.requests.filter((r) => r.method !== 'GET' && filter(r.path)).length;
  }
}

const NODE = 'n1';
const NAMESPACE = 'portico-system';

async function start(): Promise<{ clock: FakeClock; api: FakeApi; informers: FakeInformers; sockets: FakeFrameSockets; speaker: Speaker; stop: () => Promise<void>; events: string[]; registry: Registry }> {
  const [probePort = 0] = await freePorts(1);
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const api = new FakeApi();
  const informers = new FakeInformers();
  const sockets = new FakeFrameSockets([{ name: 'eth0', ifindex: 2, mac: '02:00:00:00:01:00' }]);
  const events: string[] = [];
  const registry = new Registry();
  const speaker = new Speaker(
    { node: NODE, namespace: NAMESPACE, renewIntervalMs: 10_000, leaseDurationMs: 30_000, probePort, probeIntervalMs: 100, probeTimeoutMs: 600, gratuitousRepeats: 3, gratuitousIntervalMs: 1_200 },
    { client: api, informers, sockets, discover: sockets.discover, events: { record: (_o, _t, reason, message) => events.push(`${reason}: ${message}`) }, clock, logger: pino({ level: 'silent' }), registry },
  );
  informers.fake(SPEAKER_PATHS.nodes).upsert({ metadata: { name: NODE } });
  informers.fake(SPEAKER_PATHS.pools).upsert({ apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: 'lan' }, spec: { addresses: ['192.0.2.0/24'] } } as never);
  const abort = new AbortController();
  const running = speaker.run(abort.signal, Promise.resolve(true));
  return { clock, api, informers, sockets, speaker, events, registry, stop: async () => {
    abort.abort();
    await running;
  } };
}

function service(conditions?: unknown[], name = 'web', ip = '192.0.2.10'): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'default', resourceVersion: conditions ? '2' : '1' },
    spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2' },
    status: { loadBalancer: { ingress: [{ ip }] }, ...(conditions ? { conditions } : {}) },
  };
}

const isLease = (path: string): boolean => path.includes('/leases');
const isStatus = (path: string): boolean => path.endsWith('/status');

describe('Speaker', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it('renews its Lease once per 10 s and writes nothing else in a steady state', async () => {
    const s = await start();
    stops.push(s.stop);
    await eventually(() => (s.speaker.healthy ? true : undefined), 'the lease to be held');
    for (let i = 0; i < 60; i++) await s.clock.advance(1_000);
    // The first renewal at start, then one per 10 s: 7 in 60 s.
    expect(s.api.writes(isLease)).toBe(7);
    expect(s.api.requests.filter((r) => !isLease(r.path))).toEqual([]);
  });

  it('announces an address it wins, writes the condition and an Event once, and nothing on repeats', async () => {
    const s = await start();
    stops.push(s.stop);
    await eventually(() => (s.speaker.healthy ? true : undefined), 'the lease to be held');
    s.informers.fake(SPEAKER_PATHS.services).upsert(service());
    await eventually(() => (s.api.writes(isStatus) === 1 ? true : undefined), 'the condition write');
    const [write] = s.api.requests.filter((r) => isStatus(r.path));
    expect(write?.body).toMatchObject({ status: { conditions: [{ type: 'L2Announced', status: 'True', reason: 'Announced', message: '192.0.2.10 announced by node n1 on eth0' }] } });
    expect(s.events).toEqual(['nodeAssigned: announcing 192.0.2.10 from node n1 on eth0']);
    // The Service comes back with the condition: nothing more to write.
    const conditions = (write?.body as { status: { conditions: unknown[] } }).status.conditions;
    s.informers.fake(SPEAKER_PATHS.services).upsert(service(conditions));
    s.informers.fake(SPEAKER_PATHS.nodes).upsert({ metadata: { name: NODE, resourceVersion: '9' } });
    // A second Service marks a later pass of the (serialized) loop: once it is written, the
    // pass that saw web's condition is over.
    s.informers.fake(SPEAKER_PATHS.services).upsert(service(undefined, 'api', '192.0.2.11'));
    await eventually(() => (s.api.writes(isStatus) === 2 ? true : undefined), 'the second Service condition');
    expect(s.api.requests.filter((r) => isStatus(r.path)).map((r) => r.path)).toEqual(['/api/v1/namespaces/default/services/web/status', '/api/v1/namespaces/default/services/api/status']);
    expect(s.events).toHaveLength(2);
    const metrics = await s.registry.metrics();
    expect(metrics).toContain('portico_speaker_announced_ips 2');
    expect(metrics).toMatch(/portico_speaker_gratuitous_sent_total\{protocol="arp"\} 2/);
  });

  it('says why nobody announces a Local address without ready endpoints', async () => {
    const s = await start();
    stops.push(s.stop);
    await eventually(() => (s.speaker.healthy ? true : undefined), 'the lease to be held');
    const local = service();
    (local['spec'] as Record<string, unknown>)['externalTrafficPolicy'] = 'Local';
    s.informers.fake(SPEAKER_PATHS.services).upsert(local);
    await eventually(() => (s.api.writes(isStatus) === 1 ? true : undefined), 'the condition write');
    expect(s.api.requests.find((r) => isStatus(r.path))?.body).toMatchObject({
      status: { conditions: [{ type: 'L2Announced', status: 'False', reason: 'NoEligibleNode', message: 'no node may announce 192.0.2.10: externalTrafficPolicy is Local and no node has a ready endpoint' }] },
    });
    expect(s.sockets.open_('eth0', ETHERTYPE_ARP)).toEqual([]);
    expect(s.events).toEqual([]);
  });

  it('goes silent at once when a Lease renewal fails, and announces again once one succeeds', async () => {
    const s = await start();
    stops.push(s.stop);
    await eventually(() => (s.speaker.healthy ? true : undefined), 'the lease to be held');
    s.informers.fake(SPEAKER_PATHS.services).upsert(service());
    await eventually(() => (s.sockets.open_('eth0', ETHERTYPE_ARP).length === 1 ? true : undefined), 'the address to be announced');
    s.api.failing = true;
    await s.clock.advance(10_000);
    await eventually(() => (s.sockets.open_('eth0', ETHERTYPE_ARP).length === 0 ? true : undefined), 'silence after the failed renewal');
    expect(s.speaker.healthy).toBe(false);
    s.api.failing = false;
    await s.clock.advance(2_000);
    await eventually(() => (s.sockets.open_('eth0', ETHERTYPE_ARP).length === 1 ? true : undefined), 'announcing again');
  });

  it('on stop: silent first, then the Lease is deleted', async () => {
    const s = await start();
    await eventually(() => (s.speaker.healthy ? true : undefined), 'the lease to be held');
    s.informers.fake(SPEAKER_PATHS.services).upsert(service());
    await eventually(() => (s.sockets.open_('eth0', ETHERTYPE_ARP).length === 1 ? true : undefined), 'the address to be announced');
    await s.stop();
    expect(s.sockets.open_('eth0', ETHERTYPE_ARP)).toEqual([]);
    expect(s.api.requests.at(-1)).toMatchObject({ method: 'DELETE', path: `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases/portico-speaker-${NODE}` });
  });
});
