/** deploy/speaker.yaml: the DaemonSet's privileges and the speaker's RBAC, as a user would audit them. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseManifests, type Manifest } from '../../../../src/kube/apply.js';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const manifests = async (): Promise<Manifest[]> => parseManifests(await readFile(new URL('../../../../deploy/speaker.yaml', import.meta.url), 'utf8'));
const rules = (all: Manifest[], kind: string): Rule[] => all.filter((m) => m.kind === kind).flatMap((m) => (m as Manifest & { rules: Rule[] }).rules);
const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];

describe('deploy/speaker.yaml', () => {
  it('runs on the host network with NET_RAW and nothing more, read-only, no privilege escalation', async () => {
    const ds = (await manifests()).find((m) => m.kind === 'DaemonSet') as Manifest & {
      spec: { template: { spec: { hostNetwork: boolean; serviceAccountName: string; containers: { args: string[]; env: { name: string }[]; securityContext: { capabilities: { add: string[]; drop: string[] }; readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; privileged?: boolean } }[] } } };
    };
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.serviceAccountName).toBe('portico-speaker');
    const [container] = pod.containers;
    expect(container?.args).toEqual(['speaker']);
    expect(container?.env.map((e) => e.name)).toEqual(expect.arrayContaining(['NODE_NAME', 'POD_NAMESPACE']));
    expect(container?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { add: ['NET_RAW'], drop: ['ALL'] } });
    expect(container?.securityContext.privileged).toBeUndefined();
  });

  it('reads what it watches and writes only Events, the Service status and Leases in its namespace', async () => {
    const all = await manifests();
    const cluster = rules(all, 'ClusterRole');
    for (const rule of [...cluster, ...rules(all, 'Role')]) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) expect(field).not.toContain('*');
      expect(rule.resources).not.toContain('secrets');
    }
    const clusterWrites = cluster.filter((r) => r.verbs.some((v) => WRITE_VERBS.includes(v)));
    expect(clusterWrites.map((r) => ({ resources: r.resources, verbs: r.verbs.filter((v) => WRITE_VERBS.includes(v)) }))).toEqual([
      { resources: ['services/status'], verbs: ['patch'] },
      { resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    const role = all.find((m) => m.kind === 'Role');
    expect(role?.metadata.namespace).toBe('portico-system');
    expect(rules(all, 'Role')).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] }]);
    const reads = cluster.flatMap((r) => r.resources.filter(() => r.verbs.includes('watch')));
    expect(reads.sort()).toEqual(['addresspools', 'endpointslices', 'nodes', 'services']);
  });
});
