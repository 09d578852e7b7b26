/** Object references and API paths: the one place they are built. */
import type { ObjectReference } from './events.js';

interface Referable {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** A reference to `object` (with its uid, so `kubectl describe` shows Events about it). */
export function objectRef(apiVersion: string, kind: string, object: Referable): ObjectReference {
  const { namespace, name, uid, resourceVersion } = object.metadata ?? {};
  return {
    apiVersion,
    kind,
    ...(namespace ? { namespace } : {}),
    name: name ?? '',
    ...(uid ? { uid } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
  };
}

export function serviceRef(service: Referable): ObjectReference {
  return objectRef('v1', 'Service', service);
}

/** `namespace/name` or `name` -> its parts. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export function servicePath(service: Referable): string {
  return `/api/v1/namespaces/${service.metadata?.namespace ?? 'default'}/services/${service.metadata?.name ?? ''}`;
}
