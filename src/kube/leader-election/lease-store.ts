/**
 * The Lease calls the elector makes, and their implementation over Portico's REST client
 * (with MicroTime fields that serialise as the API server wants).
 */
import type { V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import { isKubeError, type KubeClient } from '../rest.js';

/** The few Lease calls the elector makes. */
export interface LeaseStore {
  /** Resolves undefined when the Lease does not exist. */
  get(namespace: string, name: string): Promise<V1Lease | undefined>;
  /** Throws LeaseConflictError when the Lease already exists. */
  create(lease: V1Lease): Promise<V1Lease>;
  /** Sends metadata.resourceVersion; throws LeaseConflictError when it is stale. */
  replace(lease: V1Lease): Promise<V1Lease>;
}

/** Someone else wrote the Lease first (HTTP 409: AlreadyExists on create, Conflict on replace). */
export class LeaseConflictError extends Error {
  readonly namespace: string;
  readonly leaseName: string;
  readonly operation: 'create' | 'replace';

  constructor(namespace: string, leaseName: string, operation: 'create' | 'replace', cause?: unknown) {
    super(`lease ${namespace}/${leaseName}: conflict on ${operation}`, { cause });
    this.name = 'LeaseConflictError';
    this.namespace = namespace;
    this.leaseName = leaseName;
    this.operation = operation;
  }
}

/**
 * LeaseStore over Portico's REST client: 404 -> undefined, 409 -> LeaseConflictError, and every
 * call bounded by `timeoutMs` so a hung API call can neither keep a standby from taking over
 * nor delay a leader's step-down past its renew deadline.
 */
export function restLeaseStore(client: KubeClient, timeoutMs: number): LeaseStore {
  const path = (namespace: string, name?: string): string =>
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases${name === undefined ? '' : `/${name}`}`;
  return {
    async get(namespace, name) {
      try {
        return withMicroTimes(await client.request<V1Lease>('GET', path(namespace, name), { timeoutMs }));
      } catch (err) {
        if (isKubeError(err, 404)) return undefined;
        throw err;
      }
    },
    async create(lease) {
      const { namespace, name } = leaseKey(lease);
      try {
        return withMicroTimes(await client.request<V1Lease>('POST', path(namespace), { body: withMicroTimes(lease), timeoutMs }));
      } catch (err) {
        if (isKubeError(err, 409)) throw new LeaseConflictError(namespace, name, 'create', err);
        throw err;
      }
    },
    async replace(lease) {
      const { namespace, name } = leaseKey(lease);
      // Without it the API server would replace unconditionally and two leaders could both win.
      if (!lease.metadata?.resourceVersion) {
        throw new Error(`lease ${namespace}/${name}: replace needs metadata.resourceVersion`);
      }
      try {
        return withMicroTimes(await client.request<V1Lease>('PUT', path(namespace, name), { body: withMicroTimes(lease), timeoutMs }));
      } catch (err) {
        if (isKubeError(err, 409)) throw new LeaseConflictError(namespace, name, 'replace', err);
        throw err;
      }
    },
  };
}

function leaseKey(lease: V1Lease): { namespace: string; name: string } {
  const namespace = lease.metadata?.namespace;
  const name = lease.metadata?.name;
  if (!namespace || !name) throw new Error('lease needs metadata.namespace and metadata.name');
  return { namespace, name };
}


/**
 * A Lease's acquireTime and renewTime: RFC 3339 with six fraction digits, which the API server
 * requires of a MicroTime (a plain Date serialises with three). The same shape as client-node's
 * V1MicroTime, without importing that library at run time.
 */
export class MicroTime extends Date {
  override toISOString(): string {
    return `${super.toISOString().slice(0, -1)}000Z`;
  }
}

/** Times arrive as strings from the server and may be plain Dates from callers: make them MicroTimes. */
function withMicroTimes(lease: V1Lease): V1Lease {
  if (!lease.spec) return lease;
  return withSpec(lease, { acquireTime: microTime(lease.spec.acquireTime), renewTime: microTime(lease.spec.renewTime) });
}

/** A copy of `lease` (metadata, resourceVersion included) with some spec fields replaced. */
export function withSpec(lease: V1Lease, changes: Partial<V1LeaseSpec>): V1Lease {
  return { ...lease, spec: { ...lease.spec, ...changes } };
}

function microTime(value: unknown): MicroTime | undefined {
  if (value instanceof MicroTime) return value;
  if (!(value instanceof Date) && typeof value !== 'string') return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : new MicroTime(ms);
}
