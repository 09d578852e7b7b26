/** Writes deploy/crds/*.yaml from src/api/crds.ts. Run: npm run generate */
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '../src/api/render.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [file, text] of Object.entries(renderCrdFiles())) {
  await writeFile(join(root, 'deploy', 'crds', file), text);
  process.stdout.write(`wrote deploy/crds/${file}\n`);
}
