/**
 * The cluster of the footprint and terms benchmarks: one local control plane with an audit log,
 * Portico's CRDs, and one IPv4 AddressPool for the benchmark's namespaces.
 *
 * The pool is 198.19.0.0/16: RFC 2544 benchmarking space (the other half of 198.18.0.0/15 is
 * the local control plane's ClusterIP range). No speaker runs: addresses are only written to
 * Service status; nothing is announced or sent anywhere.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../hack/control-plane.js';
import { loadKubeConfig, type KubeConfig } from '../../src/kube/kubeconfig.js';
import { applyManifest } from '../../src/kube/apply.js';
import { RestClient } from '../../src/kube/rest.js';
import { createAuditLog, type AuditLog, type AuditMode } from './audit-log.js';
import { ensureNamespace, installCrds, type ServiceShape } from './cluster.js';
import { BENCH_AGENT } from './floor.js';
import { AGENT_PREFIX } from './observe.js';

export const CLASS = 'portico.dev/l2';
export const POOL_CIDR = '198.19.0.0/16';
export const POOL_SIZE = 65_536;
/** The pool serves only namespaces with this label. */
export const NAMESPACE_LABEL = { 'portico.dev/bench': 'footprint' };
export const LEASE_NAMESPACE = 'fp-system';
export const LEASE_NAME = 'portico-controller';
export const CONTROLLER_SHAPE: ServiceShape = { loadBalancerClass: CLASS, ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' };

/** The Deployment's flags (deploy/controller.yaml) with the ports off; nothing tuned. */
export function controllerFlags(kubeconfigPath: string): string[] {
  return [`--kubeconfig=${kubeconfigPath}`, '--leader-elect', `--leader-elect-namespace=${LEASE_NAMESPACE}`, '--metrics-addr=0', '--health-addr=0', '--log-level=info'];
}

export interface FootprintCluster {
  cp: ControlPlane;
  /**
   * The control plane's kubeconfig as JSON, for the controller: in a cluster it reads no
   * kubeconfig at all, so it must not pay here for loading a YAML parser (about 40 ms of its
   * start) that it never loads there.
   */
  controllerKubeconfig: string;
  kc: KubeConfig;
  client: RestClient;
  /** Keeps the records of controller user agents only. */
  audit: AuditLog;
  stop(): Promise<void>;
}

export async function startFootprintCluster(auditMode: AuditMode): Promise<FootprintCluster> {
  const audit = await createAuditLog(auditMode, (agent) => agent.startsWith(AGENT_PREFIX));
  let cp: ControlPlane | undefined;
  try {
    cp = await startControlPlane({ controllerManager: false, apiserverArgs: audit.apiserverArgs });
    const kc = loadKubeConfig(cp.kubeconfigPath);
    const controllerKubeconfig = join(dirname(cp.kubeconfigPath), 'kubeconfig.json');
    await writeFile(controllerKubeconfig, JSON.stringify(parse(await readFile(cp.kubeconfigPath, 'utf8')), null, 2));
    const client = new RestClient(kc, BENCH_AGENT);
    await installCrds(client);
    await ensureNamespace(client, LEASE_NAMESPACE);
    await applyManifest(client, {
      apiVersion: 'portico.dev/v1alpha1',
      kind: 'AddressPool',
      metadata: { name: 'bench-footprint' },
      spec: { addresses: [POOL_CIDR], autoAssign: true, allocation: { namespaceSelector: { matchLabels: NAMESPACE_LABEL } } },
    });
    const plane = cp;
    return {
      cp,
      controllerKubeconfig,
      kc,
      client,
      audit,
      stop: async () => {
        await plane.stop();
        await audit.close();
      },
    };
  } catch (error) {
    await cp?.stop();
    await audit.close();
    throw error;
  }
}
