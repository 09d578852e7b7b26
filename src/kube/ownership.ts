/**
 * Ownership marks on objects Portico manages: a finalizer and an annotation recording who
 * provisioned what, written together in one patch (the one way to write them), so cleanup can
 * always find what to delete.
 */
import type { ObjectWithMeta } from './patch.js';

export interface OwnershipMarks {
  finalizer: string;
  /** The annotation recording the owner (for Portico: which provider provisioned the balancer). */
  annotation: string;
}

interface Annotated extends ObjectWithMeta {
  metadata?: ObjectWithMeta['metadata'] & { annotations?: Record<string, string> };
}

export function hasFinalizer(object: ObjectWithMeta, finalizer: string): boolean {
  return (object.metadata?.finalizers ?? []).includes(finalizer);
}

/** The merge patch that adds the finalizer and records `owner`; undefined when already so. */
export function claimPatch(object: Annotated, marks: OwnershipMarks, owner: string): Record<string, unknown> | undefined {
  const finalizers = object.metadata?.finalizers ?? [];
  if (finalizers.includes(marks.finalizer) && object.metadata?.annotations?.[marks.annotation] === owner) return undefined;
  return { metadata: { finalizers: [...finalizers.filter((f) => f !== marks.finalizer), marks.finalizer], annotations: { [marks.annotation]: owner } } };
}

/** The merge patch that removes the finalizer and the owner annotation; undefined when neither is there. */
export function releasePatch(object: Annotated, marks: OwnershipMarks): Record<string, unknown> | undefined {
  const finalizers = object.metadata?.finalizers ?? [];
  if (!finalizers.includes(marks.finalizer) && object.metadata?.annotations?.[marks.annotation] === undefined) return undefined;
  return { metadata: { finalizers: finalizers.filter((f) => f !== marks.finalizer), annotations: { [marks.annotation]: null } } };
}
