import { V1Lease, V1LeaseSpec, V1MicroTime, V1ObjectMeta } from '@kubernetes/client-node';
import { LeaseConflictError } from '../../src/kube/leader-election/lease-store.js';
import type { LeaseStore } from '../../src/kube/leader-election/lease-store.js';

export type LeaseOp = 'get' | 'create' | 'replace';

export interface LeaseStoreCall {
  /** Which view made the call (see `client`); 'default' for the store itself. */
  client: string;
  op: LeaseOp;
  namespace: string;
  name: string;
  /** What was sent (create/replace), as sent. */
  sent?: V1Lease;
  outcome: 'pending' | 'ok' | 'not-found' | 'conflict' | 'error';
}

interface Fault {
  op: LeaseOp | 'any';
  client: string | undefined;
  error: Error;
  remaining: number;
}

/** A stand-in for a server error that is neither 404 nor 409. */
export class FakeApiError extends Error {
  constructor(message = 'injected API error') {
    super(message);
    this.name = 'FakeApiError';
  }
}

/**
 * An in-memory Lease API with resourceVersion checks, like the API server's. Records every call,
 * injects faults and hangs, and lets a test play another candidate by writing directly.
 */
export class FakeLeaseStore implements LeaseStore {
  readonly calls: LeaseStoreCall[] = [];
  private readonly leases = new Map<string, V1Lease>();
  private resourceVersion = 100;
  private faults: Fault[] = [];
  private readonly partitioned = new Map<string, Error>();
  private hanging = new Set<LeaseOp>();
  private hung: (() => void)[] = [];

  get(namespace: string, name: string): Promise<V1Lease | undefined> {
    return this.handle('default', 'get', namespace, name, undefined);
  }

  create(lease: V1Lease): Promise<V1Lease> {
    return this.write('default', 'create', lease);
  }

  replace(lease: V1Lease): Promise<V1Lease> {
    return this.write('default', 'replace', lease);
  }

  /** The same store seen by one candidate: its calls are tagged and it can be partitioned alone. */
  client(client: string): LeaseStore {
    return {
      get: (namespace, name) => this.handle(client, 'get', namespace, name, undefined),
      create: (lease) => this.write(client, 'create', lease),
      replace: (lease) => this.write(client, 'replace', lease),
    };
  }

  /** The next `times` matching calls throw `error` (a LeaseConflictError injects a 409). */
  failNext(op: LeaseOp | 'any', error: Error, times = 1, client?: string): void {
    this.faults.push({ op, client, error, remaining: times });
  }

  /** Every call from `client` fails until `heal`. */
  partition(client: string, error: Error = new FakeApiError('network partition')): void {
    this.partitioned.set(client, error);
  }

  heal(client?: string): void {
    if (client === undefined) {
      this.partitioned.clear();
      this.faults = [];
    } else {
      this.partitioned.delete(client);
      this.faults = this.faults.filter((f) => f.client !== client);
    }
  }

  /** Calls of `op` neither resolve nor reject until `unhang`. */
  hang(op: LeaseOp): void {
    this.hanging.add(op);
  }

  /** Lets hung calls proceed against the store as it is now. */
  unhang(): void {
    this.hanging.clear();
    const hung = this.hung;
    this.hung = [];
    for (const resume of hung) resume();
  }

  /** The stored Lease, if any (a copy). */
  lease(namespace: string, name: string): V1Lease | undefined {
    const stored = this.leases.get(key(namespace, name));
    return stored && cloneLease(stored);
  }

  /** Writes as someone other than the elector under test (unrecorded, no resourceVersion check). */
  put(lease: V1Lease): V1Lease {
    const namespace = lease.metadata?.namespace ?? '';
    const name = lease.metadata?.name ?? '';
    const stored = cloneLease(lease, { namespace, name, resourceVersion: this.nextVersion() });
    this.leases.set(key(namespace, name), stored);
    return cloneLease(stored);
  }

  /** Plays another candidate acquiring or renewing: sets holder and renewTime, counts transitions. */
  holdAs(
    identity: string,
    at: Date,
    target: { namespace: string; name: string; leaseDurationSeconds?: number },
  ): V1Lease {
    const old = this.leases.get(key(target.namespace, target.name));
    const oldSpec = old?.spec ?? new V1LeaseSpec();
    const changed = oldSpec.holderIdentity !== identity;
    const transitions = oldSpec.leaseTransitions ?? 0;
    const lease = new V1Lease();
    lease.metadata = Object.assign(new V1ObjectMeta(), old?.metadata, { namespace: target.namespace, name: target.name });
    lease.spec = Object.assign(new V1LeaseSpec(), oldSpec, {
      holderIdentity: identity,
      leaseDurationSeconds: target.leaseDurationSeconds ?? oldSpec.leaseDurationSeconds ?? 15,
      acquireTime: changed || !oldSpec.acquireTime ? new V1MicroTime(at.getTime()) : oldSpec.acquireTime,
      renewTime: new V1MicroTime(at.getTime()),
      leaseTransitions: old === undefined ? 0 : changed ? transitions + 1 : transitions,
    });
    return this.put(lease);
  }

  /** Bumps resourceVersion without touching spec, like someone editing a label. */
  touch(namespace: string, name: string): void {
    const stored = this.leases.get(key(namespace, name));
    if (!stored) throw new Error(`no lease ${namespace}/${name}`);
    this.leases.set(key(namespace, name), cloneLease(stored, { resourceVersion: this.nextVersion() }));
  }

  callsOf(op: LeaseOp, client?: string): LeaseStoreCall[] {
    return this.calls.filter((c) => c.op === op && (client === undefined || c.client === client));
  }

  private nextVersion(): string {
    this.resourceVersion += 1;
    return String(this.resourceVersion);
  }

  private async write(client: string, op: 'create' | 'replace', lease: V1Lease): Promise<V1Lease> {
    const written = await this.handle(client, op, lease.metadata?.namespace ?? '', lease.metadata?.name ?? '', lease);
    if (!written) throw new Error(`${op} returned nothing`);
    return written;
  }

  private async handle(
    client: string,
    op: LeaseOp,
    namespace: string,
    name: string,
    sent: V1Lease | undefined,
  ): Promise<V1Lease | undefined> {
    const call: LeaseStoreCall = { client, op, namespace, name, outcome: 'pending' };
    if (sent) call.sent = cloneLease(sent);
    this.calls.push(call);
    // A real round trip never completes synchronously.
    await Promise.resolve();
    if (this.hanging.has(op)) {
      await new Promise<void>((resume) => {
        this.hung.push(resume);
      });
    }
    try {
      const result = this.apply(client, op, namespace, name, sent);
      call.outcome = result === undefined ? 'not-found' : 'ok';
      return result && cloneLease(result);
    } catch (err) {
      call.outcome = err instanceof LeaseConflictError ? 'conflict' : 'error';
      throw err;
    }
  }

  private apply(
    client: string,
    op: LeaseOp,
    namespace: string,
    name: string,
    sent: V1Lease | undefined,
  ): V1Lease | undefined {
    const partition = this.partitioned.get(client);
    if (partition) throw partition;
    const fault = this.faults.find((f) => (f.op === 'any' || f.op === op) && (f.client ?? client) === client);
    if (fault) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.faults = this.faults.filter((f) => f !== fault);
      throw fault.error;
    }
    const k = key(namespace, name);
    const stored = this.leases.get(k);
    if (op === 'get') return stored;
    if (!sent) throw new Error(`${op} without a body`);
    if (op === 'create') {
      if (stored) throw new LeaseConflictError(namespace, name, 'create');
      const created = cloneLease(sent, { resourceVersion: this.nextVersion() });
      this.leases.set(k, created);
      return created;
    }
    const sentVersion = sent.metadata?.resourceVersion;
    // The real API would accept this unconditionally; the elector must never send it.
    if (!sentVersion) throw new Error('replace without metadata.resourceVersion');
    if (!stored) throw new FakeApiError(`lease ${k} not found`);
    if (stored.metadata?.resourceVersion !== sentVersion) throw new LeaseConflictError(namespace, name, 'replace');
    const replaced = cloneLease(sent, { resourceVersion: this.nextVersion() });
    this.leases.set(k, replaced);
    return replaced;
  }
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function cloneTime(value: V1MicroTime | undefined): V1MicroTime | undefined {
  return value === undefined ? undefined : new V1MicroTime(new Date(value).getTime());
}

/** A deep enough copy that callers cannot reach stored state; `meta` overrides metadata fields. */
function cloneLease(lease: V1Lease, meta: Partial<V1ObjectMeta> = {}): V1Lease {
  const copy = Object.assign(new V1Lease(), lease);
  if (lease.metadata || Object.keys(meta).length > 0) {
    copy.metadata = Object.assign(new V1ObjectMeta(), lease.metadata && structuredClone(lease.metadata), meta);
  }
  const spec = lease.spec;
  if (spec) {
    copy.spec = Object.assign(new V1LeaseSpec(), spec, {
      acquireTime: cloneTime(spec.acquireTime),
      renewTime: cloneTime(spec.renewTime),
    });
  }
  return copy;
}
