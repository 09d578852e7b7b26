import { dumpYaml } from '@kubernetes/client-node';
import { allCrds } from './crds.js';

export const GENERATED_HEADER = '# Generated from src/api/crds.ts by `npm run generate`; do not edit.\n';

/** File name under deploy/crds/ -> YAML text. */
export function renderCrdFiles(): Record<string, string> {
  return Object.fromEntries(Object.entries(allCrds()).map(([file, crd]) => [file, GENERATED_HEADER + dumpYaml(crd, { noRefs: true, lineWidth: 120 })]));
}
