/**
 * Leadership terms in one process (issue #12): a controller that gains and loses the Lease again
 * and again must not keep anything of an old term — here, what a user would see grow: open
 * connections to the API server, and the process's metric collectors.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import { isKubeError } from '../../src/kube/rest.js';
import { startTestController } from '../support/controller.js';
import { eventually, useNamespace } from '../support/kube.js';

interface LeaseSpec {
  holderIdentity?: string;
  acquireTime?: string;
  renewTime?: string;
}

/** This process's established TCP connections to `port` (its socket inodes in /proc/net/tcp*). */
function connectionsTo(port: number): number {
  const ours = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match?.[1]) ours.add(match[1]);
    } catch {
      // closed while listing
    }
  }
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // remote address is field 2 (addr:port), state field 3 (01 = ESTABLISHED), inode field 9.
      if (fields[2]?.endsWith(`:${portHex}`) && fields[3] === '01' && ours.has(fields[9] ?? '')) count++;
    }
  }
  return count;
}

describe('leadership terms in one process', () => {
  const ns = useNamespace('terms');

  it('leaves no connection to the API server behind after each lost term', async () => {
    const { client } = ns;
    const server = /server:\s*(\S+)/.exec(readFileSync(inject('kubeconfig'), 'utf8'))?.[1] ?? '';
    const port = Number(new URL(server).port);
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/portico-controller`;
    const identity = `${ns.name}-leader`;
    const baseline = connectionsTo(port);

    for (let term = 1; term <= 3; term++) {
      const controller = await startTestController(['--leader-elect', `--leader-elect-namespace=${ns.name}`, `--leader-elect-identity=${identity}`]);
      await eventually(async () => ((await client.request<{ spec?: LeaseSpec }>('GET', leasePath).catch(() => undefined))?.spec?.holderIdentity === identity ? true : undefined), `term ${String(term)}: Lease held`);
      // Another candidate takes the Lease over, as after a partition.
      await eventually(async () => {
        const lease = await client.request<{ spec?: LeaseSpec }>('GET', leasePath);
        const now = new Date().toISOString().replace('Z', '000Z');
        try {
          await client.request('PUT', leasePath, { body: { ...lease, spec: { ...lease.spec, holderIdentity: 'someone-else', acquireTime: now, renewTime: now } } });
          return true;
        } catch (error) {
          if (isKubeError(error, 409)) return undefined;
          throw error;
        }
      }, 'Lease taken over');
      expect(await controller.running.done).toBe('lost');
      await client.request('DELETE', leasePath);
      // Every connection of the ended term closes (keep-alive sockets would linger for minutes).
      await eventually(() => (connectionsTo(port) <= baseline ? true : undefined), `term ${String(term)}: connections back to ${String(baseline)} (now ${String(connectionsTo(port))})`, 10_000);
    }
  });
});
