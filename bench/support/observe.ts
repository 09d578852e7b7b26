/**
 * Watching a controller process from outside: its requests in the API server's audit log (by
 * its identity), when it goes quiet, when it holds the Lease.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { COMPONENT } from '../../src/cmd/controller.js';
import { abortable } from '../../src/kube/abort.js';
import type { KubeClient } from '../../src/kube/rest.js';
import { countByKind, isLease, type AuditLog, type AuditRecord } from './audit-log.js';
import type { ControllerProcess } from './process.js';
import { round, sleep } from './util.js';

/** The controller's user agent: `portico-controller/<version> (<identity>)`. */
export const AGENT_PREFIX = `${COMPONENT}/`;
/** Quiet: no request but Lease renewals for this long. */
export const QUIET_MS = 5_000;

export interface Observer {
  audit: AuditLog;
  client: KubeClient;
  signal: AbortSignal;
}

/** Rejects if the process exits while `promise` is pending. */
export function whileRunning<T>(proc: ControllerProcess, promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([promise, proc.exited.then((code) => Promise.reject(new Error(`the controller (pid ${String(proc.pid)}) exited with ${String(code)} during ${what}; see bench/results/footprint.*.log.tmp`)))]);
}

/** The process's audit records in [from, to): its user agent ends with its identity. */
export async function requestsOf(ctx: Observer, proc: ControllerProcess, fromMs: number, toMs?: number): Promise<AuditRecord[]> {
  await ctx.audit.poll();
  const identity = `(${proc.identity})`;
  return ctx.audit.records((agent) => agent.startsWith(AGENT_PREFIX) && agent.endsWith(identity), fromMs, toMs);
}

export interface Quiet {
  /** Seconds from `fromMs` to the last non-Lease request before a 5 s silence; null: never quiet within the timeout. */
  seconds: number | null;
  /** Non-Lease requests after `fromMs` until quiet (or the timeout), by kind. */
  requests: Record<string, number>;
  waitedS: number;
}

/** Waits until the process has sent no non-Lease request for 5 s, counting from `fromMs` (wall clock). */
export async function waitQuiet(ctx: Observer, proc: ControllerProcess, fromMs: number, timeoutMs: number): Promise<Quiet> {
  if (ctx.audit.mode === 'off') {
    // Diagnostic mode without an audit log: nothing to observe, so only a pause.
    await abortable(whileRunning(proc, sleep(QUIET_MS), 'a pause'), ctx.signal);
    return { seconds: null, requests: {}, waitedS: QUIET_MS / 1000 };
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = (await requestsOf(ctx, proc, fromMs)).filter((r) => !isLease(r));
    const last = records.at(-1)?.at ?? fromMs;
    const now = Date.now();
    // A request is in the log once answered: allow for the lag before calling the silence real.
    if (now - last >= QUIET_MS + ctx.audit.lagMs) return { seconds: round((last - fromMs) / 1000), requests: countByKind(records), waitedS: round((now - fromMs) / 1000) };
    if (now >= deadline) return { seconds: null, requests: countByKind(records), waitedS: round((now - fromMs) / 1000) };
    await abortable(whileRunning(proc, sleep(250), 'the wait for quiet'), ctx.signal);
  }
}

export async function leaseHolder(ctx: Observer, namespace: string, name: string): Promise<string | undefined> {
  const lease = await ctx.client.request<V1Lease>('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`).catch(() => undefined);
  return lease?.spec?.holderIdentity ?? undefined;
}

export async function waitLeader(ctx: Observer, proc: ControllerProcess, namespace: string, name: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await leaseHolder(ctx, namespace, name)) !== proc.identity) {
    if (Date.now() > deadline) throw new Error(`${proc.identity} did not take the Lease within 60 s`);
    await abortable(whileRunning(proc, sleep(200), 'the wait for the Lease'), ctx.signal);
  }
}

