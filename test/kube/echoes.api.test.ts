/**
 * A write's answer handed to the client's own watch as the event of that version (echoes.ts),
 * against a real API server. The watch starts from a version before the writes, so the server
 * replays their events after the answers are in: the order is fixed, not raced.
 */
import { describe, expect, it } from 'vitest';
import type { WatchEvent } from '../../src/kube/rest.js';
import { eventually, useNamespace } from '../support/kube.js';

interface ConfigMap {
  metadata: { name: string; uid?: string; resourceVersion?: string; managedFields?: unknown[] };
  data?: Record<string, string>;
}

describe("a client's own writes on its watch", () => {
  const ns = useNamespace('echoes');

  it('delivers the answer of a write that shares it, unparsed, and parses every other event', async () => {
    const collection = `/api/v1/namespaces/${ns.name}/configmaps`;
    const created = await ns.client.request<ConfigMap>('POST', collection, { body: { metadata: { name: 'echo' }, data: { v: '1' } } });
    const path = `${collection}/echo`;
    const shared = await ns.client.request<ConfigMap>('PATCH', path, { body: { data: { v: '2' } }, patchType: 'merge', shareWithWatch: created.metadata.uid });
    const plain = await ns.client.request<ConfigMap>('PATCH', path, { body: { data: { v: '3' } }, patchType: 'merge' });

    const events: WatchEvent<ConfigMap>[] = [];
    const abort = new AbortController();
    const watching = ns.client.watch<ConfigMap>(collection, { resourceVersion: created.metadata.resourceVersion, fieldSelector: 'metadata.name=echo' }, (event) => events.push(event), abort.signal);
    try {
      await eventually(() => (events.length >= 2 ? true : undefined), 'the two updates replayed');
    } finally {
      abort.abort();
      await watching;
    }
    expect(events.map((e) => [e.type, e.object.data?.v])).toEqual([
      ['MODIFIED', '2'],
      ['MODIFIED', '3'],
    ]);
    // The shared write's event is its answer itself; the server sent the same object.
    expect(events[0]?.object).toBe(shared);
    expect(events[0]?.object.metadata.managedFields).toBeDefined();
    // The other write's event was parsed: equal to its answer, not the same object.
    expect(events[1]?.object).not.toBe(plain);
    expect(events[1]?.object).toEqual(plain);
  });
});
