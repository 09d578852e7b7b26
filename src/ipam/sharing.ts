/**
 * When two Services may share one address (MetalLB's rules, scoped to a namespace by default):
 * both carry the same sharing key, use no port/protocol pair in common, and with
 * externalTrafficPolicy Local select the same pods. Across namespaces only in a pool that opts
 * in (`spec.allocation.crossNamespaceSharing`): a guessed key must not let one tenant take
 * another's address.
 */
import { ALLOW_SHARED_IP_ANNOTATION, type AllocationRequest } from './request.js';

/** Why an address cannot be shared, as an allocation failure reason and message. */
export interface SharingRefusal {
  reason: 'AddressInUse' | 'SharingConflict';
  message: string;
}

/** The group whose addresses a request may share: same key and same backends. */
export function sharingGroup(req: AllocationRequest): string | undefined {
  return req.sharingKey === undefined ? undefined : `${req.sharingKey}\u0000${req.backendKey}`;
}

export function portKey(port: { port: number; protocol: string }): string {
  return `${String(port.port)}/${port.protocol}`;
}

/** sharingConflict(holder, req, crossNamespace) === undefined, cheaply. */
export function canShare(holder: AllocationRequest, req: AllocationRequest, crossNamespace: boolean): boolean {
  return (
    holder.sharingKey !== undefined &&
    holder.sharingKey === req.sharingKey &&
    holder.backendKey === req.backendKey &&
    (crossNamespace || holder.namespace === req.namespace) &&
    !req.ports.some((p) => holder.ports.some((q) => q.port === p.port && q.protocol === p.protocol))
  );
}

/** Why two Services may not share an address; undefined when they may. */
export function sharingConflict(holder: AllocationRequest, req: AllocationRequest, crossNamespace: boolean): SharingRefusal | undefined {
  if (holder.sharingKey === undefined) {
    return { reason: 'AddressInUse', message: `${holder.key} does not allow sharing (no ${ALLOW_SHARED_IP_ANNOTATION} annotation)` };
  }
  if (req.sharingKey === undefined) {
    return { reason: 'AddressInUse', message: `this Service does not allow sharing (no ${ALLOW_SHARED_IP_ANNOTATION} annotation)` };
  }
  if (holder.sharingKey !== req.sharingKey) {
    return {
      reason: 'SharingConflict',
      message: `different sharing keys (${JSON.stringify(req.sharingKey)} here, ${JSON.stringify(holder.sharingKey)} there)`,
    };
  }
  if (!crossNamespace && holder.namespace !== req.namespace) {
    return {
      reason: 'SharingConflict',
      message: `${holder.key} is in another namespace; sharing keys are scoped to a namespace unless the pool sets allocation.crossNamespaceSharing`,
    };
  }
  const clash = req.ports.find((p) => holder.ports.some((q) => q.port === p.port && q.protocol === p.protocol));
  if (clash !== undefined) {
    return { reason: 'SharingConflict', message: `both Services use port ${clash.port}/${clash.protocol}` };
  }
  if (holder.backendKey !== req.backendKey) {
    return {
      reason: 'SharingConflict',
      message: `different backends (${describeBackend(req.backendKey)} here, ${describeBackend(holder.backendKey)} there); with externalTrafficPolicy Local both need the same selector`,
    };
  }
  return undefined;
}

function describeBackend(backendKey: string): string {
  if (backendKey === '') return 'externalTrafficPolicy Cluster';
  const selector = backendKey.startsWith('Local:') ? backendKey.slice('Local:'.length) : backendKey;
  return `externalTrafficPolicy Local, selector {${selector}}`;
}
