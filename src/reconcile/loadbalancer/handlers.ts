/**
 * Informer event handlers of the LoadBalancer controller: which keys an event queues, and
 * which in-flight work it supersedes. They never reconcile themselves (level-based: a
 * reconcile reads the current object by key).
 */
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { WriteExpectations } from '../../kube/expectations.js';
import { objectKey, type InformerHandlers } from '../../kube/informer.js';
import { PROVISIONED_BY_ANNOTATION, hasFinalizer, sameInputs, sliceServiceKey } from './planner.js';

/** What the handlers drive; the controller implements it. */
export interface HandlerTarget {
  readonly expectations: WriteExpectations;
  /** Ours to look at: our classes, or carrying our marks. */
  relevant(service: V1Service): boolean;
  enqueue(key: string): void;
  /** The Service's in-flight work no longer applies (deleted, being deleted, recreated): abort it. */
  supersede(key: string): void;
  /** A Service vanished while carrying our marks, without our cleanup: remember its last copy. */
  vanished(service: V1Service): void;
  nodesChanged(): void;
  endpointSlicesChanged(serviceKey: string): void;
}

export function serviceHandlers(target: HandlerTarget): InformerHandlers<V1Service> {
  return {
    onAdd: (s) => {
      const key = objectKey(s);
      target.expectations.delivered(key, s.metadata?.resourceVersion ?? '');
      if (target.relevant(s)) target.enqueue(key);
    },
    onUpdate: (old, s) => {
      const key = objectKey(s);
      const delivery = target.expectations.delivered(key, s.metadata?.resourceVersion ?? '');
      const deletionStarted = old.metadata?.deletionTimestamp === undefined && s.metadata?.deletionTimestamp !== undefined;
      const recreated = old.metadata?.uid !== s.metadata?.uid;
      if (deletionStarted || recreated) target.supersede(key);
      // Our own write coming back carries nothing to react to, unless a relist folded someone
      // else's change into it. One that arrives before its answer is 'undecided': the answer
      // settles it (expectations' onForeign queues the key if it was not ours).
      const foreignChange = delivery === 'foreign' || !sameInputs(old, s) || old.metadata?.deletionTimestamp !== s.metadata?.deletionTimestamp;
      if (delivery === 'resume' || (foreignChange && (target.relevant(s) || target.relevant(old)))) target.enqueue(key);
    },
    onDelete: (s) => {
      const key = objectKey(s);
      target.expectations.forget(key);
      target.supersede(key);
      if (hasFinalizer(s) || s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined) target.vanished(s);
      if (target.relevant(s)) target.enqueue(key);
    },
  };
}

export function nodeHandlers(target: HandlerTarget): InformerHandlers<V1Node> {
  const changed = (): void => target.nodesChanged();
  return { onAdd: changed, onUpdate: changed, onDelete: changed };
}

export function endpointSliceHandlers(target: HandlerTarget): InformerHandlers<V1EndpointSlice> {
  const changed = (slice: V1EndpointSlice): void => {
    const key = sliceServiceKey(slice);
    if (key !== undefined) target.endpointSlicesChanged(key);
  };
  return { onAdd: changed, onUpdate: (_old, slice) => changed(slice), onDelete: changed };
}
