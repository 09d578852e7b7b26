/** Runs the real controller in-process against the test API server. */
import { readFile } from 'node:fs/promises';
import { inject } from 'vitest';
import { renderCrdFiles } from '../../src/api/render.js';
import { parseControllerFlags } from '../../src/cmd/config.js';
import { PROVIDER_MODULES } from '../../src/providers/registry.js';
import { applyYaml } from '../../src/kube/apply.js';
import { createLogger } from '../../src/kube/logger.js';
import type { KubeClient } from '../../src/kube/rest.js';
import { startController, type RunningController, type StartOptions } from '../../src/cmd/controller.js';
import { eventually } from './kube.js';

export interface TestController {
  running: RunningController;
  stop(): Promise<void>;
}

export async function startTestController(flags: string[] = [], options: StartOptions = {}): Promise<TestController> {
  const modules = [...(options.providerModules ?? []), ...PROVIDER_MODULES];
  const config = parseControllerFlags([`--kubeconfig=${inject('kubeconfig')}`, '--metrics-addr=0', '--health-addr=0', '--log-level=silent', ...flags], process.env, modules);
  const abort = new AbortController();
  const running = await startController(config, abort.signal, { logger: createLogger(process.env.PORTICO_TEST_LOG === '1' ? 'debug' : 'silent'), ...options });
  return {
    running,
    stop: async () => {
      abort.abort();
      await running.done;
    },
  };
}

export async function installCrds(client: KubeClient): Promise<void> {
  for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
  await eventually(() => client.request('GET', '/apis/portico.dev/v1alpha1/addresspools').then(() => true), 'AddressPool CRD served');
}

export async function readExample(path: string): Promise<string> {
  return readFile(new URL(`../../examples/${path}`, import.meta.url), 'utf8');
}
