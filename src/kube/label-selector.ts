import type { LabelSelector } from '../api/types.js';
import type { SpecProblem } from '../api/types.js';

/** The operators of metav1.LabelSelectorRequirement. */
export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** A DNS-1123 label (namespace names): lowercase alphanumerics and '-', at most 63 characters. */
export function isDNS1123Label(value: string): boolean {
  return value.length <= 63 && DNS1123_LABEL.test(value);
}

/** A DNS-1123 subdomain (most object names): dot-separated DNS-1123 labels, at most 253 characters. */
export function isDNS1123Subdomain(value: string): boolean {
  return value.length >= 1 && value.length <= 253 && value.split('.').every((part) => DNS1123_LABEL.test(part));
}

/** A label key: an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters. */
export function isQualifiedName(value: string): boolean {
  const slash = value.indexOf('/');
  const prefix = slash === -1 ? undefined : value.slice(0, slash);
  const name = slash === -1 ? value : value.slice(slash + 1);
  if (prefix !== undefined && !isDNS1123Subdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

/** A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric. */
export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && QUALIFIED_NAME_PART.test(value));
}

/**
 * metav1.LabelSelector semantics: every matchLabels pair AND every matchExpression must hold.
 * An absent or empty selector matches everything. An expression that cannot be evaluated
 * (unknown operator, In/NotIn without values) matches nothing: selectors here decide who may
 * use an address pool, so a malformed one must fail closed.
 */
export function matchesSelector(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  // Own properties only: a label named "constructor" must not be found on Object.prototype.
  const get = (key: string): string | undefined => (Object.hasOwn(labels, key) ? labels[key] : undefined);
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (get(key) !== value) return false;
  }
  for (const requirement of selector.matchExpressions ?? []) {
    const actual = get(requirement.key);
    const values: unknown = requirement.values;
    const list = Array.isArray(values) ? (values as unknown[]) : [];
    switch (requirement.operator as string) {
      case 'In':
        if (list.length === 0 || actual === undefined || !list.includes(actual)) return false;
        break;
      case 'NotIn':
        if (list.length === 0 || (actual !== undefined && list.includes(actual))) return false;
        break;
      case 'Exists':
        if (actual === undefined) return false;
        break;
      case 'DoesNotExist':
        if (actual !== undefined) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** What is wrong with a selector as written; empty when it is valid. `fieldPath` names the selector itself. */
export function validateSelector(selector: LabelSelector | undefined, fieldPath: string): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const raw: unknown = selector;
  if (raw === undefined) return problems;
  if (!isRecord(raw)) return [{ field: fieldPath, message: 'must be an object with matchLabels and/or matchExpressions' }];

  const matchLabels = raw['matchLabels'];
  if (matchLabels !== undefined) {
    if (!isRecord(matchLabels)) {
      problems.push({ field: `${fieldPath}.matchLabels`, message: 'must be a map of label keys to values' });
    } else {
      for (const [key, value] of Object.entries(matchLabels)) {
        const field = `${fieldPath}.matchLabels[${key}]`;
        if (!isQualifiedName(key)) problems.push({ field, message: `${quote(key)} is not a valid label key` });
        if (typeof value !== 'string' || !isLabelValue(value)) {
          problems.push({ field, message: `${quoteUnknown(value)} is not a valid label value` });
        }
      }
    }
  }

  const expressions = raw['matchExpressions'];
  if (expressions === undefined) return problems;
  if (!Array.isArray(expressions)) {
    problems.push({ field: `${fieldPath}.matchExpressions`, message: 'must be a list' });
    return problems;
  }
  (expressions as unknown[]).forEach((expression, i) => {
    const base = `${fieldPath}.matchExpressions[${i}]`;
    if (!isRecord(expression)) {
      problems.push({ field: base, message: 'must be an object with key, operator and values' });
      return;
    }
    const key = expression['key'];
    if (typeof key !== 'string' || !isQualifiedName(key)) {
      problems.push({ field: `${base}.key`, message: `${quoteUnknown(key)} is not a valid label key` });
    }
    const operator = expression['operator'];
    const values = expression['values'];
    if (values !== undefined && !Array.isArray(values)) {
      problems.push({ field: `${base}.values`, message: 'must be a list of strings' });
      return;
    }
    const list = (values ?? []) as unknown[];
    if (operator === 'In' || operator === 'NotIn') {
      if (list.length === 0) {
        problems.push({ field: `${base}.values`, message: `must not be empty for operator ${operator}` });
      }
      list.forEach((value, j) => {
        if (typeof value !== 'string' || !isLabelValue(value)) {
          problems.push({ field: `${base}.values[${j}]`, message: `${quoteUnknown(value)} is not a valid label value` });
        }
      });
    } else if (operator === 'Exists' || operator === 'DoesNotExist') {
      if (list.length > 0) {
        problems.push({ field: `${base}.values`, message: `must be empty for operator ${operator}` });
      }
    } else {
      problems.push({
        field: `${base}.operator`,
        message: `unknown operator ${quoteUnknown(operator)}; use one of ${SELECTOR_OPERATORS.join(', ')}`,
      });
    }
  });
  return problems;
}

/** True when the selector restricts anything; `{}` and undefined select everything. */
export function isEmptySelector(selector: LabelSelector | undefined): boolean {
  if (selector === undefined) return true;
  return Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}

/**
 * A stable text form of a label map: keys sorted by code unit, `k=v` joined by ','. Label keys and
 * values cannot contain ',' or '=', so distinct maps give distinct strings.
 */
export function canonicalSelector(selector: Readonly<Record<string, string>> | undefined): string {
  if (selector === undefined) return '';
  return Object.keys(selector)
    .sort(compareCodeUnits)
    .map((key) => `${key}=${selector[key] ?? ''}`)
    .join(',');
}

/** Locale-independent ordering, so keys sort the same on every machine. */
export function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function quoteUnknown(value: unknown): string {
  return typeof value === 'string' ? quote(value) : value === undefined ? 'missing value' : typeof value;
}
