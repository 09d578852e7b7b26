/** Helpers for tests against the real API server started by test/global-setup.ts. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, inject } from 'vitest';
import { loadKubeConfig } from '../../src/kube/kubeconfig.js';
import { RestClient, isKubeError } from '../../src/kube/rest.js';

const execFileAsync = promisify(execFile);

export function testKubeConfig(path = inject('kubeconfig')): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export function testClient(path = inject('kubeconfig')): RestClient {
  return new RestClient(loadKubeConfig(path), 'portico-test');
}

/** Creates a namespace of its own for the calling test file and deletes it afterwards. */
export function useNamespace(prefix: string): { readonly name: string; client: RestClient } {
  const client = testClient();
  const state = { name: `${prefix}-${randomBytes(3).toString('hex')}`, client };
  beforeAll(async () => {
    await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: state.name, labels: { 'portico.dev/test': prefix } } } });
  });
  afterAll(async () => {
    await client.request('DELETE', `/api/v1/namespaces/${state.name}`).catch((error: unknown) => {
      if (!isKubeError(error, 404)) throw error;
    });
  });
  return state;
}

/** Polls `probe` until it returns a value other than undefined, or fails after the deadline. */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Runs the real kubectl (built with the control plane) against the test API server, as a user
 * would. Undefined when no kubectl was built: callers skip, saying so.
 */
export function kubectl(): ((...args: string[]) => Promise<string>) | undefined {
  const path = inject('kubectl');
  if (!path) return undefined;
  return async (...args: string[]) => {
    const { stdout } = await execFileAsync(path, [`--kubeconfig=${inject('kubeconfig')}`, ...args], { maxBuffer: 10 * 1024 * 1024 });
    return stdout;
  };
}
