/**
 * Writes that skip themselves when nothing changed and retry on 409 Conflict.
 *
 * Every write carries the resourceVersion it was computed from, so a concurrent change makes
 * it fail with 409 instead of overwriting; then the object is read again and the change
 * recomputed from the fresh copy.
 */
import { isDeepStrictEqual } from 'node:util';
import { isKubeError, type KubeClient } from './rest.js';

export interface ObjectWithMeta {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; finalizers?: string[] };
}

export const MAX_CONFLICT_RETRIES = 5;

/**
 * Computes a merge patch from the current object (undefined = nothing to change) and sends it
 * with optimistic concurrency. Returns the object as the server has it afterwards, and whether
 * a write happened. With `shareWithWatch`, the answer and the client's watch event of it are
 * one object (RequestParams.shareWithWatch): read-only, managedFields possibly dropped.
 */
export async function patchWithRetry<T extends ObjectWithMeta>(
  client: KubeClient,
  objectPath: string,
  current: T,
  compute: (object: T) => Record<string, unknown> | undefined,
  options: { subresource?: 'status'; signal?: AbortSignal; shareWithWatch?: boolean } = {},
): Promise<{ object: T; wrote: boolean }> {
  let object = current;
  for (let attempt = 0; ; attempt++) {
    const patch = compute(object);
    if (patch === undefined) return { object, wrote: false };
    const body = { ...patch, metadata: { ...(patch.metadata as object | undefined), resourceVersion: object.metadata?.resourceVersion } };
    try {
      const path = options.subresource ? `${objectPath}/${options.subresource}` : objectPath;
      const shareWithWatch = options.shareWithWatch === true ? object.metadata?.uid : undefined;
      const written = await client.request<T>('PATCH', path, { body, patchType: 'merge', signal: options.signal, shareWithWatch });
      return { object: written, wrote: true };
    } catch (error) {
      if (!isKubeError(error, 409) || attempt + 1 >= MAX_CONFLICT_RETRIES) throw error;
      object = await client.request<T>('GET', objectPath, { signal: options.signal });
    }
  }
}

/**
 * Patches `status` through the status subresource when `desired` differs from what the object
 * has. `desired` lists only the status fields Portico owns; others are left alone. It returns
 * undefined when the (possibly re-read) object is no longer one to write to.
 */
export async function patchStatus<T extends ObjectWithMeta & { status?: Record<string, unknown> }>(
  client: KubeClient,
  objectPath: string,
  object: T,
  desired: (object: T) => Record<string, unknown> | undefined,
  signal?: AbortSignal,
  shareWithWatch?: boolean,
): Promise<{ object: T; wrote: boolean }> {
  return patchWithRetry(
    client,
    objectPath,
    object,
    (o) => {
      const want = desired(o);
      return want !== undefined && statusDiffers(o.status, want) ? { status: want } : undefined;
    },
    { subresource: 'status', signal, shareWithWatch },
  );
}

/** Whether writing the status fields `want` would change what `have` stores. */
export function statusDiffers(have: Record<string, unknown> | undefined, want: Record<string, unknown>): boolean {
  return Object.entries(want).some(([key, value]) => !equivalent(have?.[key], value));
}

/**
 * A comparable form: the API server drops empty lists and undefined fields, and returns keys
 * in its own order, so compare without the former and with keys sorted.
 */
export function normalize(value: unknown): unknown {
  // null is how a merge patch deletes a field: it compares equal to absent.
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(normalize);
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') {
    const entries = Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, normalize(v)] as const)
      .filter(([, v]) => v !== undefined);
    return entries.length === 0 ? undefined : Object.fromEntries(entries);
  }
  return value;
}

/** True when the two would be stored the same by the API server. */
export function equivalent(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(normalize(a), normalize(b));
}
