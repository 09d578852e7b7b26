/** Runs the real controller in-process against the test API server. */
import { spawn, type ChildProcess } from 'node:child_process';
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
  // A test module replaces the built-in one of the same class (e.g. one with injected faults).
  const extra = options.providerModules ?? [];
  const modules = [...extra, ...PROVIDER_MODULES.filter((m) => !extra.some((e) => e.providerClass === m.providerClass))];
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

/** `portico controller` as its own process, the way the Deployment runs it (stdout and stderr piped). */
export function spawnControllerProcess(kubeconfig: string, flags: readonly string[]): ChildProcess {
  const root = new URL('../../', import.meta.url).pathname;
  return spawn(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'controller', `--kubeconfig=${kubeconfig}`, ...flags], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
}
