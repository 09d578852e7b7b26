/** The committed deploy/ manifests: generated CRDs up to date, every object appliable by Portico's own apply. */
import { readdir, readFile } from 'node:fs/promises';
import { parse as loadYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CRD_DIRS, renderCrdFiles } from '../../src/api/render.js';
import { objectPath, parseManifests, type Manifest } from '../../src/kube/apply.js';

const deployDir = new URL('../../deploy/', import.meta.url);

async function read(relative: string): Promise<string> {
  return readFile(new URL(relative, deployDir), 'utf8');
}

/** Every YAML file of the kustomize set under deploy/ (crds/ included; not the Helm chart), except the kustomization itself. */
async function manifestFiles(): Promise<string[]> {
  const entries = await readdir(deployDir, { recursive: true });
  return entries.filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && !f.startsWith('helm/')).sort();
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

function rulesOf(kind: string, manifests: Manifest[]): PolicyRule[] {
  return manifests.filter((m) => m.kind === kind).flatMap((m) => (m as Manifest & { rules: PolicyRule[] }).rules);
}

describe('deploy/ manifests', () => {
  it.each(CRD_DIRS)('ships CRDs in %s identical to what `npm run generate` writes from src/api/crds.ts', async (dir) => {
    const rendered = renderCrdFiles();
    const sub = dir.replace(/^deploy\//, '');
    const committed = (await readdir(new URL(`${sub}/`, deployDir))).filter((f) => f.endsWith('.yaml')).sort();
    expect(committed).toEqual(Object.keys(rendered).sort());
    for (const [file, text] of Object.entries(rendered)) {
      expect(await read(`${sub}/${file}`), `${dir}/${file} is stale: run npm run generate`).toBe(text);
    }
  });

  it('contains only objects of kinds Portico knows how to apply', async () => {
    const files = await manifestFiles();
    expect(files).toEqual(expect.arrayContaining(['controller.yaml', 'namespace.yaml', 'rbac.yaml']));
    for (const file of files) {
      const manifests = parseManifests(await read(file));
      expect(manifests.length, `${file} has no objects`).toBeGreaterThan(0);
      for (const manifest of manifests) {
        expect(manifest.metadata.name, `${file}: ${manifest.kind} without a name`).toBeTruthy();
        // objectPath throws on a kind src/kube/apply.ts does not know.
        expect(() => objectPath(manifest), `${file}: ${manifest.apiVersion} ${manifest.kind}`).not.toThrow();
      }
    }
  });

  it('lists every manifest file in kustomization.yaml, and nothing else', async () => {
    const kustomization = loadYaml(await read('kustomization.yaml')) as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual(await manifestFiles());
  });

  it('grants the controller no wildcards, no Secrets and no update or delete cluster-wide', async () => {
    const manifests = parseManifests(await read('rbac.yaml'));
    const clusterRules = rulesOf('ClusterRole', manifests);
    const allRules = [...clusterRules, ...rulesOf('Role', manifests)];
    expect(clusterRules.length).toBeGreaterThan(0);
    for (const rule of allRules) {
      for (const field of [rule.apiGroups ?? [], rule.resources ?? [], rule.verbs]) expect(field).not.toContain('*');
      expect(rule.resources ?? []).not.toContain('secrets');
      expect(rule.verbs).not.toContain('delete');
      expect(rule.verbs).not.toContain('deletecollection');
    }
    for (const rule of clusterRules) expect(rule.verbs).not.toContain('update');
  });

  it('runs the controller as a leader-elected, unprivileged Deployment bound to its ServiceAccount', async () => {
    const [deployment] = parseManifests(await read('controller.yaml')).filter((m) => m.kind === 'Deployment');
    const spec = (deployment as Manifest & {
      spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { args: string[]; env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]; securityContext: Record<string, unknown> }[] } } };
    }).spec;
    expect(spec.replicas).toBe(2);
    const pod = spec.template.spec;
    expect(pod.serviceAccountName).toBe('portico-controller');
    const [container] = pod.containers;
    expect(container?.args).toEqual(expect.arrayContaining(['controller', '--leader-elect', '--leader-elect-namespace=portico-system']));
    expect(container?.env.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(container?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  });
});

describe('one image for every workload', () => {
  it('the controller Deployment and the speaker DaemonSet run the same image', async () => {
    const { readFile } = await import('node:fs/promises');
    const { parseManifests } = await import('../../src/kube/apply.js');
    const images = new Set<string>();
    for (const file of ['controller.yaml', 'speaker.yaml']) {
      for (const m of parseManifests(await readFile(new URL(`../../deploy/${file}`, import.meta.url), 'utf8'))) {
        const spec = (m as { spec?: { template?: { spec?: { containers?: { image?: string }[] } } } }).spec;
        for (const c of spec?.template?.spec?.containers ?? []) if (c.image) images.add(c.image);
      }
    }
    expect([...images]).toEqual(['localhost/portico:0.1.0']);
  });
});
