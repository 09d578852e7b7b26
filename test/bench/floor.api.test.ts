/**
 * The benchmarks' floor (bench/support/floor.ts) stands for the least any client must do for
 * the controller's result, so it must make the controller's writes: the same status body,
 * condition included. A floor writing less finishes sooner and inflates every ratio against it.
 */
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deleteAllServices } from '../../bench/support/cluster.js';
import { FLOOR_CLASS, runFloor } from '../../bench/support/floor.js';
import { applyManifest } from '../../src/kube/apply.js';
import { loadKubeConfig } from '../../src/kube/kubeconfig.js';
import { installCrds, startTestController } from '../support/controller.js';
import { eventually, useNamespace } from '../support/kube.js';

const controllerNs = useNamespace('floor-ctl');
const floorNs = useNamespace('floor-bare');
const { client } = controllerNs;
const POOLS = '/apis/portico.dev/v1alpha1/addresspools';
const poolName = `${controllerNs.name}-pool`;

function service(name: string, loadBalancerClass: string): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'LoadBalancer', loadBalancerClass, ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', allocateLoadBalancerNodePorts: false, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

/** What two writes of one status body have in common: everything but the address and the time. */
function shape(status: V1Service['status']): unknown {
  return {
    ingress: (status?.loadBalancer?.ingress ?? []).map(({ ip, ...rest }) => ({ ...rest, ip: typeof ip })),
    conditions: (status?.conditions ?? []).map(({ lastTransitionTime, message, ...rest }) => ({ ...rest, lastTransitionTime: typeof lastTransitionTime, message: message.replace(/\d+\.\d+\.\d+\.\d+/g, '<ip>') })),
  };
}

beforeAll(async () => {
  await installCrds(client);
  await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.124/32'], allocation: { namespaces: [controllerNs.name] } } });
});

afterAll(async () => {
  await deleteAllServices(client, controllerNs.name, 4);
  await deleteAllServices(client, floorNs.name, 4);
  await client.request('DELETE', `${POOLS}/${poolName}`).catch(() => undefined);
});

describe('the benchmark floor', () => {
  it('writes the status the controller writes, LoadBalancerReady condition included', async () => {
    const controller = await startTestController();
    let written: V1Service;
    try {
      await client.request('POST', `/api/v1/namespaces/${controllerNs.name}/services`, { body: service('by-controller', 'portico.dev/l2') });
      written = await eventually(async () => {
        const s = await client.request<V1Service>('GET', `/api/v1/namespaces/${controllerNs.name}/services/by-controller`);
        return (s.status?.conditions ?? []).length > 0 && (s.status?.loadBalancer?.ingress ?? []).length > 0 ? s : undefined;
      }, 'the controller to write the Service status');
    } finally {
      await controller.stop();
    }

    for (const name of ['by-floor-1', 'by-floor-2']) await client.request('POST', `/api/v1/namespaces/${floorNs.name}/services`, { body: service(name, FLOOR_CLASS) });
    const result = await runFloor(loadKubeConfig(inject('kubeconfig')), floorNs.name, { services: 2, workers: 2, address: (n) => `198.51.100.${String(124 + n)}` });
    expect(result.services).toBe(2);

    const floorWritten = await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${floorNs.name}/services`);
    expect(floorWritten.items).toHaveLength(2);
    for (const s of floorWritten.items) expect(shape(s.status)).toEqual(shape(written.status));
    expect(shape(written.status)).toMatchObject({ conditions: [{ type: 'LoadBalancerReady', status: 'True', reason: 'Provisioned' }] });
  });
});
