/**
 * The Helm chart (deploy/helm/portico) rendered by a real helm (built from its Go module by
 * hack/helm.sh, cached) and checked by the real API server with server-side dry-run apply; and
 * the chart grants exactly the RBAC the kustomize set (deploy/) grants.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyYaml, objectPath, parseManifests, type Manifest } from '../../src/kube/apply.js';
import { isKubeError } from '../../src/kube/rest.js';
import { useNamespace } from '../support/kube.js';

const ns = useNamespace('helm');
const client = ns.client;
const chartDir = new URL('../../deploy/helm/portico', import.meta.url).pathname;
const repoRoot = new URL('../../', import.meta.url).pathname;
let helm = '';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}
type Rbac = Manifest & { rules?: PolicyRule[]; subjects?: { kind: string; name: string; namespace?: string }[]; roleRef?: { kind: string; name: string } };
type Deployment = Manifest & { spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { image: string; args: string[]; resources: unknown }[] } } } };
type PodSpec = Record<string, unknown> & { serviceAccountName: string; nodeSelector?: Record<string, string>; containers: (Record<string, unknown> & { args: string[]; ports: { name: string; containerPort: number }[] })[] };
type DaemonSet = Manifest & { spec: { template: { spec: PodSpec } } };

function helmRun(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(helm, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: `${repoRoot}.cache/helm-home/cache`, HELM_CONFIG_HOME: `${repoRoot}.cache/helm-home/config`, HELM_DATA_HOME: `${repoRoot}.cache/helm-home/data` } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `helm template` of the chart into the test namespace; throws with helm's message on failure. */
function render(...args: string[]): Manifest[] {
  const result = helmRun(['template', 'portico', chartDir, '--namespace', ns.name, ...args]);
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** Server-side apply with dryRun=All: the API server validates and defaults, stores nothing. */
async function dryRunApply(manifests: Manifest[]): Promise<void> {
  for (const manifest of manifests) {
    await client.request('PATCH', objectPath(manifest, ns.name), { body: manifest, patchType: 'apply', query: { fieldManager: 'helm-test', dryRun: 'All', force: true } }).catch((error: unknown) => {
      throw new Error(`${manifest.kind} ${manifest.metadata.name}: ${error instanceof Error ? error.message : String(error)}`);
    });
  }
}

const byKind = (manifests: Manifest[], kind: string): Manifest[] => manifests.filter((m) => m.kind === kind);
/** The chart's objects of one component (controller or speaker), by their component label. */
const ofComponent = (manifests: Manifest[], component: string): Manifest[] =>
  manifests.filter((m) => (m.metadata as { labels?: Record<string, string> }).labels?.['app.kubernetes.io/component'] === component);
const rulesOf = (manifests: Manifest[], kind: string): PolicyRule[] => byKind(manifests, kind).flatMap((m) => (m as Rbac).rules ?? []);
function only(manifests: Manifest[], kind: string): Manifest {
  const found = byKind(manifests, kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0] as Manifest;
}

beforeAll(() => {
  const result = spawnSync('bash', [`${repoRoot}hack/helm.sh`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`hack/helm.sh failed (exit ${result.status ?? result.signal})`);
  helm = result.stdout.trim().split('\n').pop() ?? '';
}, 1_200_000);

afterAll(async () => {
  for (const crd of ['servicemonitors', 'podmonitors']) {
    await client.request('DELETE', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}.monitoring.coreos.com`).catch((error: unknown) => {
      if (!isKubeError(error, 404)) throw error;
    });
  }
});

describe('the Helm chart', () => {
  it('passes helm lint', () => {
    const result = helmRun(['lint', chartDir, '--strict']);
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('renders with its defaults into objects the API server accepts (server-side dry run)', async () => {
    const manifests = render('--include-crds');
    expect(manifests.map((m) => m.kind).sort()).toEqual(['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'CustomResourceDefinition', 'CustomResourceDefinition', 'DaemonSet', 'Deployment', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'ServiceAccount', 'ServiceAccount']);
    await dryRunApply(manifests);
    const deployment = (only(manifests, 'Deployment') as Deployment);
    expect(deployment.spec.replicas).toBe(2);
    const [container] = deployment.spec.template.spec.containers;
    expect(container?.image).toBe('localhost/portico:0.1.0');
    expect(container?.args).toEqual(expect.arrayContaining(['controller', '--providers=portico.dev/l2', '--default-class=portico.dev/l2', '--leader-elect', `--leader-elect-namespace=${ns.name}`, '--log-level=info']));
  });

  it('turns every value into the flag or field it names', async () => {
    const manifests = render(
      '--set', 'replicas=3',
      '--set', 'logLevel=debug',
      '--set', 'defaultClass=',
      '--set', 'leaderElection.leaseName=portico-b',
      '--set', 'resources.limits.memory=512Mi',
      '--set', 'image.tag=dev',
    );
    await dryRunApply(manifests);
    const deployment = (only(manifests, 'Deployment') as Deployment);
    const [container] = deployment.spec.template.spec.containers;
    expect(deployment.spec.replicas).toBe(3);
    expect(container?.image).toBe('localhost/portico:dev');
    expect(container?.args).toContain('--log-level=debug');
    expect(container?.args).toContain('--leader-elect-name=portico-b');
    expect(container?.args.some((a) => a.startsWith('--default-class'))).toBe(false);
    expect(container?.resources).toMatchObject({ limits: { memory: '512Mi' } });
    expect(rulesOf(manifests, 'Role').find((r) => r.resourceNames)?.resourceNames).toEqual(['portico-b']);
  });

  it('runs the speaker DaemonSet with portico.dev/l2, from the speaker values', async () => {
    const manifests = render(
      '--set', 'speaker.logLevel=debug',
      '--set', 'speaker.metricsPort=9472',
      '--set', 'speaker.probePort=9947',
      '--set', 'speaker.nodeSelector.portico\\.dev/announce=yes',
      '--set', 'speaker.resources.limits.memory=300Mi',
      '--set', 'image.tag=dev',
    );
    await dryRunApply(manifests);
    const pod = (only(manifests, 'DaemonSet') as DaemonSet).spec.template.spec;
    const [container] = pod.containers;
    expect(pod.serviceAccountName).toBe('portico-speaker');
    expect(pod.nodeSelector).toEqual({ 'portico.dev/announce': 'yes' });
    expect(container?.image).toBe('localhost/portico:dev');
    expect(container?.args).toEqual(['speaker', '--log-level=debug', '--metrics-addr=:9472', '--probe-port=9947']);
    expect(container?.ports.map((p) => [p.name, p.containerPort])).toEqual([['metrics', 9472], ['probes', 9947]]);
    expect(container?.resources).toMatchObject({ limits: { memory: '300Mi' } });
  });

  it('renders no speaker without portico.dev/l2, or with speaker.enabled=false', () => {
    for (const args of [['--set', 'providers={portico.dev/aws-nlb}', '--set', 'defaultClass='], ['--set', 'speaker.enabled=false']]) {
      const manifests = render(...args);
      expect(ofComponent(manifests, 'speaker'), args.join(' ')).toEqual([]);
      only(manifests, 'Deployment');
    }
  });

  it('runs one replica without leader election, and refuses two without it', async () => {
    const single = render('--set', 'replicas=1', '--set', 'leaderElection.enabled=false');
    await dryRunApply(single);
    expect(byKind(ofComponent(single, 'controller'), 'Role')).toEqual([]);
    expect((only(single, 'Deployment') as Deployment).spec.template.spec.containers[0]?.args).not.toContain('--leader-elect');
    expect(() => render('--set', 'leaderElection.enabled=false')).toThrow(/needs leaderElection.enabled/);
  });

  it('refuses values its schema does not allow, naming them', () => {
    expect(() => render('--set', 'logLevel=verbose')).toThrow(/logLevel/);
    expect(() => render('--set', 'replicaCount=2')).toThrow(/replicaCount/);
    expect(() => render('--set', 'leaderElection.leaseDuration=15')).toThrow(/leaseDuration/);
  });

  it('refuses a default class that is not one of the providers', () => {
    expect(() => render('--set', 'defaultClass=portico.dev/aws-nlb')).toThrow(/defaultClass portico.dev\/aws-nlb must be one of providers/);
  });

  it('adds a metrics Service and a ServiceMonitor for the controller and a PodMonitor for the speakers when asked, accepted once the CRDs exist', async () => {
    const manifests = render('--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=prom');
    type Monitor = Manifest & { metadata: { labels: Record<string, string> }; spec: { selector: { matchLabels: Record<string, string> } } };
    const monitor = only(manifests, 'ServiceMonitor') as Monitor;
    const podMonitor = only(manifests, 'PodMonitor') as Monitor;
    expect(monitor.metadata.labels.release).toBe('prom');
    expect(podMonitor.metadata.labels.release).toBe('prom');
    expect(podMonitor.spec.selector.matchLabels['app.kubernetes.io/component']).toBe('speaker');
    only(manifests, 'Service');
    for (const [fixture, plural] of [['servicemonitor-crd.yaml', 'servicemonitors'], ['podmonitor-crd.yaml', 'podmonitors']]) {
      await applyYaml(client, await readFile(new URL(`fixtures/${fixture}`, import.meta.url), 'utf8'));
      await expect.poll(() => client.request('GET', `/apis/monitoring.coreos.com/v1/${plural}`).then(() => true, () => false), { timeout: 30_000 }).toBe(true);
    }
    await dryRunApply(manifests);
  });
});

describe('chart and kustomize set (deploy/)', () => {
  it('grant the same RBAC, each component bound to its own ServiceAccount', async () => {
    const kustomization = parseManifests(await readFile(new URL('../../deploy/kustomization.yaml', import.meta.url), 'utf8'))[0] as unknown;
    // Plain resources, no patches or generators: the kustomize output is the listed files as they are.
    expect(Object.keys(kustomization as object).sort()).toEqual(['apiVersion', 'kind', 'resources']);
    const chart = render();
    for (const [component, file, workload] of [['controller', 'rbac.yaml', 'Deployment'], ['speaker', 'speaker.yaml', 'DaemonSet']] as const) {
      const kustomize = parseManifests(await readFile(new URL(`../../deploy/${file}`, import.meta.url), 'utf8'));
      const mine = ofComponent(chart, component);
      for (const kind of ['ClusterRole', 'Role']) expect(rulesOf(mine, kind), `${component} ${kind}`).toEqual(rulesOf(kustomize, kind));
      const account = only(mine, 'ServiceAccount').metadata.name;
      for (const binding of [...byKind(mine, 'ClusterRoleBinding'), ...byKind(mine, 'RoleBinding')] as Rbac[]) {
        expect(binding.subjects, `${component} ${binding.kind}`).toEqual([{ kind: 'ServiceAccount', name: account, namespace: ns.name }]);
      }
      expect((only(mine, workload) as Deployment).spec.template.spec.serviceAccountName).toBe(account);
    }
    expect(ofComponent(chart, 'controller').length + ofComponent(chart, 'speaker').length, 'every object belongs to one component').toBe(chart.length);
  });

  it('run the controller the same way: image, flags, probes, ports, resources, security context', async () => {
    type Pod = { securityContext: unknown; containers: Record<string, unknown>[] };
    const kustomize = (parseManifests(await readFile(new URL('../../deploy/controller.yaml', import.meta.url), 'utf8')).find((m) => m.kind === 'Deployment') as Manifest & { spec: { replicas: number; template: { spec: Pod } } }).spec;
    const chart = (only(render(), 'Deployment') as Manifest & { spec: { replicas: number; template: { spec: Pod } } }).spec;
    expect(chart.replicas).toBe(kustomize.replicas);
    expect(chart.template.spec.securityContext).toEqual(kustomize.template.spec.securityContext);
    const [k, c] = [kustomize.template.spec.containers[0] ?? {}, chart.template.spec.containers[0] ?? {}];
    for (const field of ['image', 'imagePullPolicy', 'ports', 'livenessProbe', 'readinessProbe', 'resources', 'securityContext', 'env']) expect(c[field], field).toEqual(k[field]);
    // Every kustomize flag is in the chart's (the Lease namespace is the release namespace there).
    const chartArgs = (c.args as string[]).map((a) => a.replace(`=${ns.name}`, '=portico-system'));
    expect(chartArgs).toEqual(expect.arrayContaining(k.args as string[]));
  });

  it('run the speaker the same way: host network, tolerations, image, env, probes, ports, resources, security context', async () => {
    const kustomize = (parseManifests(await readFile(new URL('../../deploy/speaker.yaml', import.meta.url), 'utf8')).find((m) => m.kind === 'DaemonSet') as DaemonSet).spec.template.spec;
    const chart = (only(render(), 'DaemonSet') as DaemonSet).spec.template.spec;
    for (const field of ['hostNetwork', 'dnsPolicy', 'terminationGracePeriodSeconds', 'tolerations', 'securityContext']) expect(chart[field], field).toEqual(kustomize[field]);
    const [k, c] = [kustomize.containers[0], chart.containers[0]];
    for (const field of ['image', 'imagePullPolicy', 'ports', 'livenessProbe', 'readinessProbe', 'resources', 'securityContext', 'env']) expect(c?.[field], field).toEqual(k?.[field]);
    expect(c?.args).toEqual(expect.arrayContaining(k?.args ?? ['missing']));
  });
});
