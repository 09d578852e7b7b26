/** Writes the CRD manifests from src/api/crds.ts: deploy/crds/ (kustomize) and the chart's crds/. Run: npm run generate */
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRD_DIRS, renderCrdFiles } from '../src/api/render.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const dir of CRD_DIRS) {
  for (const [file, text] of Object.entries(renderCrdFiles())) {
    await writeFile(join(root, dir, file), text);
    process.stdout.write(`wrote ${dir}/${file}\n`);
  }
}
