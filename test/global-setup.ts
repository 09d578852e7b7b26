/**
 * One real control plane (etcd + kube-apiserver + kube-controller-manager) per test run; the
 * tests get its kubeconfig path through `inject('kubeconfig')`.
 */
import type { TestProject } from 'vitest/node';
import { startControlPlane, type ControlPlane } from '../hack/control-plane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    kubernetesVersion: string;
    /** Path to kubectl, or '' when the binaries came without one. */
    kubectl: string;
  }
}

let controlPlane: ControlPlane | undefined;

export async function setup(project: TestProject): Promise<void> {
  controlPlane = await startControlPlane();
  project.provide('kubeconfig', controlPlane.kubeconfigPath);
  project.provide('kubernetesVersion', controlPlane.version);
  project.provide('kubectl', controlPlane.kubectl ?? '');
}

export async function teardown(): Promise<void> {
  await controlPlane?.stop();
}
