/**
 * Two `portico controller` processes against the real API server: exactly one leads; a killed
 * leader is replaced once its lease expires; a clean shutdown hands over without waiting for
 * expiry. The processes also serve /healthz, /readyz and /metrics.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePorts } from '../../hack/control-plane.js';
import { JITTER_FACTOR } from '../../src/kube/leader-election/elector.js';
import { spawnControllerProcess } from '../support/controller.js';
import { eventually, useNamespace } from '../support/kube.js';

const ns = useNamespace('leader');
const LEASE = 'portico-test';
const LEASE_MS = 6_000;
const RENEW_MS = 4_000;
const RETRY_MS = 1_000;

interface Candidate {
  identity: string;
  process: ChildProcess;
  port: number;
  output: string[];
}

const candidates: Candidate[] = [];

async function startCandidate(identity: string): Promise<Candidate> {
  const [port] = await freePorts(1);
  const child = spawnControllerProcess(inject('kubeconfig'), [
    '--leader-elect',
    `--leader-elect-namespace=${ns.name}`,
    `--leader-elect-name=${LEASE}`,
    `--leader-elect-identity=${identity}`,
    `--leader-elect-lease-duration=${String(LEASE_MS / 1000)}s`,
    `--leader-elect-renew-deadline=${String(RENEW_MS / 1000)}s`,
    `--leader-elect-retry-period=${String(RETRY_MS / 1000)}s`,
    `--metrics-addr=127.0.0.1:${String(port)}`,
    `--health-addr=127.0.0.1:${String(port)}`,
    '--log-level=info',
  ]);
  const candidate: Candidate = { identity, process: child, port: port ?? 0, output: [] };
  child.stdout?.on('data', (chunk: Buffer) => candidate.output.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => candidate.output.push(chunk.toString()));
  candidates.push(candidate);
  return candidate;
}

async function holder(): Promise<string | undefined> {
  try {
    const lease = await ns.client.request<{ spec?: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${LEASE}`);
    return lease.spec?.holderIdentity || undefined;
  } catch {
    return undefined;
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${String(port)}${path}`);
  return { status: response.status, body: await response.text() };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

afterAll(async () => {
  for (const c of candidates) {
    c.process.kill('SIGKILL');
    await exited(c.process);
  }
});

describe('leader election between two controller processes', () => {
  it('elects exactly one leader; a killed leader is replaced after its lease expires; a clean stop hands over at once', async () => {
    const a = await startCandidate('candidate-a');
    const b = await startCandidate('candidate-b');
    const first = await eventually(holder, 'a leader', 60_000);
    const leader = first === a.identity ? a : b;
    const standby = leader === a ? b : a;

    // Both serve probes; only the leader reconciles (and logs so).
    await eventually(async () => ((await get(standby.port, '/readyz')).status === 200 ? true : undefined), 'standby ready', 30_000);
    expect((await get(leader.port, '/healthz')).status).toBe(200);
    const metrics = await eventually(async () => {
      const { body } = await get(leader.port, '/metrics');
      return body.includes('portico_workqueue_depth') ? body : undefined;
    }, 'leader metrics', 30_000);
    expect(metrics).toContain('process_cpu_seconds_total');
    expect(leader.output.join('')).toContain('became leader');
    expect(standby.output.join('')).not.toContain('became leader');

    // Killed without releasing: the standby takes over once the lease expires as it observes it.
    const killedAt = Date.now();
    leader.process.kill('SIGKILL');
    await eventually(async () => ((await holder()) === standby.identity ? true : undefined), 'standby to take over', 60_000, 100);
    const takeoverMs = Date.now() - killedAt;
    // The bound is lease duration plus one jittered retry period (client-go's jitter), plus slack
    // for a loaded machine; it is a property of the protocol, not a performance target.
    expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS - RETRY_MS);
    expect(takeoverMs).toBeLessThan(LEASE_MS + RETRY_MS * (1 + JITTER_FACTOR) + 3_000);
    await eventually(() => (standby.output.join('').includes('became leader') ? true : undefined), 'new leader to start its controllers');

    // A fresh candidate joins; the leader stops cleanly and releases the lease.
    const c = await startCandidate('candidate-c');
    await eventually(async () => ((await get(c.port, '/readyz')).status === 200 ? true : undefined), 'candidate-c ready', 30_000);
    const stoppedAt = Date.now();
    standby.process.kill('SIGTERM');
    expect(await exited(standby.process)).toBe(0);
    await eventually(async () => ((await holder()) === c.identity ? true : undefined), 'candidate-c to take over', 60_000, 100);
    const handoverMs = Date.now() - stoppedAt;
    // Released, not expired: no waiting for the lease duration.
    expect(handoverMs).toBeLessThan(LEASE_MS);
    process.stdout.write(`leader election: takeover after kill ${String(takeoverMs)} ms, clean handover ${String(handoverMs)} ms\n`);
  }, 120_000);
});
