import { stringify } from 'yaml';
import { allCrds } from './crds.js';

/** Where the generated CRDs go: the kustomize set, and the Helm chart (helm installs crds/ first, never templated). */
export const CRD_DIRS = ['deploy/crds', 'deploy/helm/portico/crds'] as const;

export const GENERATED_HEADER = '# Generated from src/api/crds.ts by `npm run generate`; do not edit.\n';

/**
 * A manifest as YAML that every key survives as written (`default`, `x-kubernetes-*`): a plain
 * YAML library, not client-node's model-class mapper. YAML 1.1 output quotes strings such as
 * `on` or `yes` that the API server's YAML 1.1 reader would otherwise turn into booleans, and
 * shared sub-schemas are written out in full (no anchors).
 */
export function toYaml(value: unknown): string {
  return stringify(value, { version: '1.1', aliasDuplicateObjects: false, lineWidth: 120 });
}

/** File name under deploy/crds/ -> YAML text. */
export function renderCrdFiles(): Record<string, string> {
  return Object.fromEntries(Object.entries(allCrds()).map(([file, crd]) => [file, GENERATED_HEADER + toYaml(crd)]));
}
