/** metav1.Condition handling, the way apimachinery's meta.SetStatusCondition does it. */
import type { Condition } from '../api/types.js';

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

function toIso(value: string | Date | undefined): string | undefined {
  return value instanceof Date ? value.toISOString() : value;
}

/**
 * `existing` with `next` set: other types are kept in place; `lastTransitionTime` is kept while
 * the status is unchanged and set to `now` when it changes.
 */
export function setCondition(existing: readonly Condition[] | undefined, next: ConditionInput, now: Date, observedGeneration?: number): Condition[] {
  const list = existing ?? [];
  const old = list.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status ? (toIso(old.lastTransitionTime) ?? now.toISOString()) : now.toISOString();
  const condition: Condition = { ...next, ...(observedGeneration !== undefined ? { observedGeneration } : {}), lastTransitionTime };
  return old ? list.map((c) => (c.type === next.type ? condition : c)) : [...list, condition];
}

export function removeCondition(existing: readonly Condition[] | undefined, type: string): Condition[] {
  return (existing ?? []).filter((c) => c.type !== type);
}

export function findCondition(existing: readonly Condition[] | undefined, type: string): Condition | undefined {
  return (existing ?? []).find((c) => c.type === type);
}

/** Caps a message for a condition or Event: the first `maxItems` items and "and N more". */
export function boundedList(items: readonly string[], maxItems = 5, separator = '; '): string {
  if (items.length <= maxItems) return items.join(separator);
  return `${items.slice(0, maxItems).join(separator)}${separator}and ${String(items.length - maxItems)} more`;
}

/** Conditions and Events stay readable and far below the API's size limits. */
export const MAX_MESSAGE_LENGTH = 1024;

export function boundedMessage(message: string, max = MAX_MESSAGE_LENGTH): string {
  return message.length <= max ? message : `${message.slice(0, max - 14)}… (truncated)`;
}
