/**
 * What a process loads by importing a command. client-node, the AWS SDK and the Alibaba SDK
 * each cost tens of MB of RSS: only a provider that runs (or an exec-plugin kubeconfig) may
 * load them, so the controller with its default (bare-metal) provider, the speaker and
 * `release` must not. The controller loads a disabled provider's own code, and the
 * ExternalService controller, only when enabled too (docs/controller.md, "Memory and CPU").
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HEAVY = /node_modules\/(@kubernetes\/client-node|@aws-sdk\/[^/]+|@alicloud\/[^/]+)\//;

// Runs in the loader thread: each resolved URL, with its importer, written before the import proceeds.
const RECORDER = `
import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(out, JSON.stringify([context.parentURL ?? '', result.url]) + '\\n');
  return result;
}`;

/** The packages of HEAVY that importing `entries` (paths under the repository) loads, each with who imported it first. */
async function heavyImports(entries: string[]): Promise<{ heavy: Map<string, string>; urls: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'portico-imports-'));
  try {
    const out = join(dir, 'resolved.jsonl');
    const script = [
      `import { register } from 'node:module';`,
      `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(RECORDER)}`)}, { data: { out: ${JSON.stringify(out)} } });`,
      ...entries.map((entry) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, entry)).href)});`),
    ].join('\n');
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000 });
    const urls: string[] = [];
    const heavy = new Map<string, string>();
    for (const line of (await readFile(out, 'utf8')).split('\n').filter(Boolean)) {
      const [parent = '', url = ''] = JSON.parse(line) as string[];
      urls.push(url);
      const match = HEAVY.exec(url);
      if (match?.[1] && !heavy.has(match[1])) heavy.set(match[1], parent.replace(pathToFileURL(ROOT).href, ''));
    }
    return { heavy, urls };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('importing a command', () => {
  it('loads neither client-node nor a cloud SDK for the controller, speaker and release', async () => {
    const { heavy, urls } = await heavyImports(['src/cmd/controller.ts', 'src/cmd/speaker.ts', 'src/cmd/release.ts']);
    // The recorder saw the imports (an empty record would pass vacuously).
    expect(urls.some((u) => u.endsWith('/src/kube/rest.ts'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/src/providers/registry.ts'))).toBe(true);
    expect(Object.fromEntries(heavy)).toEqual({});
  }, 90_000);

  it('loads neither the cloud providers\' own code nor the ExternalService controller for the controller until enabled', async () => {
    const { urls } = await heavyImports(['src/cmd/controller.ts']);
    const own = urls.filter((u) => u.startsWith(pathToFileURL(join(ROOT, 'src')).href)).map((u) => u.replace(pathToFileURL(ROOT).href, ''));
    // Their registry entries (flags, settings) are loaded; what they create is not.
    expect(own).toContain('src/providers/aws/module.ts');
    expect(own).toContain('src/providers/aliyun/module.ts');
    const lazy = ['src/providers/aws/provider.ts', 'src/providers/aws/guard.ts', 'src/providers/aliyun/provider.ts', 'src/providers/aliyun/client.ts', 'src/reconcile/externalservice/controller.ts'];
    expect(own.filter((path) => lazy.includes(path))).toEqual([]);
  }, 90_000);

  it('loads only the prom-client classes the controller uses, not its index, push gateway or default collectors', async () => {
    // CommonJS files do not pass the recorder's resolve hook: read the require cache instead.
    const script = [
      `import { createRequire } from 'node:module';`,
      `await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/cmd/controller.ts')).href)});`,
      `console.log(JSON.stringify(Object.keys(createRequire(${JSON.stringify(join(ROOT, 'package.json'))}).cache)));`,
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000 });
    const prom = (JSON.parse(stdout) as string[]).filter((path) => path.includes('/node_modules/prom-client/')).map((path) => path.replace(/.*\/node_modules\/prom-client\//, ''));
    expect(prom).toContain('lib/counter.js');
    expect(prom).toContain('lib/histogram.js');
    expect(prom.filter((path) => ['index.js', 'lib/pushgateway.js', 'lib/cluster.js', 'lib/defaultMetrics.js', 'lib/summary.js'].includes(path))).toEqual([]);
  }, 90_000);

  it('reads a JSON kubeconfig without loading the YAML parser, and loads it for a YAML one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-imports-'));
    try {
      const document = { apiVersion: 'v1', kind: 'Config', 'current-context': 'c', clusters: [{ name: 'k', cluster: { server: 'https://192.0.2.10:6443' } }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }], users: [{ name: 'u', user: { token: 't' } }] };
      await writeFile(join(dir, 'json'), JSON.stringify(document, null, 2));
      await writeFile(join(dir, 'yaml'), 'apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: k, cluster: {server: "https://192.0.2.10:6443"}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n');
      const yamlLoaded = async (file: string): Promise<boolean> => {
        const script = [
          `import { createRequire } from 'node:module';`,
          `const { loadKubeConfig } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/kube/kubeconfig.ts')).href)});`,
          `const { server } = await loadKubeConfig(${JSON.stringify(join(dir, file))}, {}).access();`,
          `if (server !== 'https://192.0.2.10:6443') throw new Error(server);`,
          `console.log(JSON.stringify(Object.keys(createRequire(${JSON.stringify(join(ROOT, 'package.json'))}).cache)));`,
        ].join('\n');
        const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000 });
        return (JSON.parse(stdout) as string[]).some((path) => path.includes('/node_modules/yaml/'));
      };
      expect(await yamlLoaded('json')).toBe(false);
      expect(await yamlLoaded('yaml')).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('does load the SDK once a provider needs it (the check above can see one)', async () => {
    const { heavy } = await heavyImports(['src/providers/aliyun/transport.ts']);
    expect(heavy.get('@alicloud/openapi-core')).toBe('src/providers/aliyun/transport.ts');
  }, 90_000);
});
