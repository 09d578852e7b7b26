/**
 * Server-side apply of plain manifests, for the demo, the tests and `deploy/`. Knows the
 * resource paths of the kinds Portico ships or touches; anything else is an error, not a guess.
 */
import { parseAllDocuments, type Tags } from 'yaml';
import type { KubeClient } from './rest.js';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

const RESOURCES: Record<string, { plural: string; namespaced: boolean }> = {
  'v1/Namespace': { plural: 'namespaces', namespaced: false },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/Endpoints': { plural: 'endpoints', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/Node': { plural: 'nodes', namespaced: false },
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'apps/v1/DaemonSet': { plural: 'daemonsets', namespaced: true },
  'discovery.k8s.io/v1/EndpointSlice': { plural: 'endpointslices', namespaced: true },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': { plural: 'customresourcedefinitions', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRole': { plural: 'clusterroles', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { plural: 'clusterrolebindings', namespaced: false },
  'rbac.authorization.k8s.io/v1/Role': { plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { plural: 'rolebindings', namespaced: true },
  'coordination.k8s.io/v1/Lease': { plural: 'leases', namespaced: true },
  'portico.dev/v1alpha1/AddressPool': { plural: 'addresspools', namespaced: false },
  'portico.dev/v1alpha1/ExternalService': { plural: 'externalservices', namespaced: true },
  // The Helm chart's optional Prometheus Operator objects (metrics.serviceMonitor.enabled).
  'monitoring.coreos.com/v1/ServiceMonitor': { plural: 'servicemonitors', namespaced: true },
  'monitoring.coreos.com/v1/PodMonitor': { plural: 'podmonitors', namespaced: true },
};

/** The REST path of one object (`namespace` fills in for manifests that name none). */
export function objectPath(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>, namespace = 'default'): string {
  const resource = RESOURCES[`${manifest.apiVersion}/${manifest.kind}`];
  if (!resource) throw new Error(`unknown kind ${manifest.apiVersion} ${manifest.kind}`);
  const prefix = manifest.apiVersion.includes('/') ? `/apis/${manifest.apiVersion}` : `/api/${manifest.apiVersion}`;
  const ns = resource.namespaced ? `/namespaces/${manifest.metadata.namespace ?? namespace}` : '';
  return `${prefix}${ns}/${resource.plural}/${manifest.metadata.name}`;
}

/** Thrown for text that is not YAML; names the line. */
export class ManifestParseError extends Error {
  override readonly name = 'ManifestParseError';
}

/**
 * Read YAML as kubectl does (YAML 1.1: `on`/`yes` are booleans) but keep `1:20` and
 * `2024-01-01` strings, as the API server's reader does (no sexagesimal numbers, no timestamps).
 */
const YAML_OPTIONS = {
  version: '1.1',
  merge: false,
  uniqueKeys: true,
  customTags: (tags: Tags): Tags => tags.filter((tag) => typeof tag === 'string' || (tag.format !== 'TIME' && tag.tag !== 'tag:yaml.org,2002:timestamp')),
} as const;

/**
 * Every object in a multi-document YAML text, keys kept exactly as written (client-node's
 * loadAllYaml maps documents onto its model classes and renames a schema's `default` to
 * `_default`). Empty documents and non-objects are skipped.
 */
export function parseManifests(yamlText: string): Manifest[] {
  const docs = parseAllDocuments(yamlText, YAML_OPTIONS);
  const manifests: Manifest[] = [];
  for (const doc of Array.isArray(docs) ? docs : []) {
    const [error] = doc.errors;
    if (error) throw new ManifestParseError(`invalid YAML: ${error.message.split('\n')[0] ?? ''}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'kind' in value) manifests.push(value as Manifest);
  }
  return manifests;
}

export async function applyManifest<T = Manifest>(client: KubeClient, manifest: Manifest, namespace = 'default', fieldManager = 'portico'): Promise<T> {
  const resource = RESOURCES[`${manifest.apiVersion}/${manifest.kind}`];
  const body = resource?.namespaced ? { ...manifest, metadata: { ...manifest.metadata, namespace: manifest.metadata.namespace ?? namespace } } : manifest;
  return client.request<T>('PATCH', objectPath(manifest, namespace), { body, patchType: 'apply', query: { fieldManager, force: true } });
}

export async function applyYaml(client: KubeClient, yamlText: string, namespace = 'default'): Promise<Manifest[]> {
  const applied: Manifest[] = [];
  for (const manifest of parseManifests(yamlText)) applied.push(await applyManifest(client, manifest, namespace));
  return applied;
}
