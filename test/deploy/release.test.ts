/** `portico release` planning: pure, as a table. */
import { describe, expect, it } from 'vitest';
import { activeLeaseHolder, parseReleaseArgs, planRelease, withoutProviders, type ReleaseAction } from '../../src/cmd/release.js';
import { FINALIZER, PROVISIONED_BY_ANNOTATION } from '../../src/reconcile/loadbalancer/planner.js';
import { provisionedWith, svc, withAnnotation, withClass, withCondition, withFinalizer, withIngress, withNamespace } from '../builders/service.js';

const L2 = 'portico.dev/l2';
const CLOUD = 'portico.dev/aws-nlb';
type Summary = Pick<ReleaseAction, 'key' | 'providerClass' | 'callProvider' | 'clearStatus' | 'removeMarks'> & { skipped: boolean };
const summary = (a: ReleaseAction): Summary => ({ key: a.key, providerClass: a.providerClass, callProvider: a.callProvider, clearStatus: a.clearStatus, removeMarks: a.removeMarks, skipped: a.skip !== undefined });

describe('planRelease', () => {
  const rows: [string, ReturnType<typeof svc>, Set<string>, boolean, Summary | undefined][] = [
    ['an l2 Service with an address', svc('web', withClass(L2), provisionedWith(L2), withIngress('203.0.113.10'), withCondition('True', 'Provisioned')), new Set([L2]), false,
      { key: 'default/web', providerClass: L2, callProvider: true, clearStatus: true, removeMarks: true, skipped: false }],
    ['only the finalizer left (annotation removed by hand): the class names the provider', svc('web', withClass(L2), withFinalizer(FINALIZER)), new Set([L2]), false,
      { key: 'default/web', providerClass: L2, callProvider: true, clearStatus: false, removeMarks: true, skipped: false }],
    ['only the annotation left', svc('web', withClass(L2), withAnnotation(PROVISIONED_BY_ANNOTATION, L2)), new Set([L2]), false,
      { key: 'default/web', providerClass: L2, callProvider: true, clearStatus: false, removeMarks: true, skipped: false }],
    ['a failed Service: the condition alone is Portico status to clear', svc('web', withClass(L2), provisionedWith(L2), withCondition('False', 'AllocationFailed')), new Set([L2]), false,
      { key: 'default/web', providerClass: L2, callProvider: true, clearStatus: true, removeMarks: true, skipped: false }],
    ['provider not enabled: skipped', svc('db', withClass(CLOUD), provisionedWith(CLOUD), withIngress('198.51.100.1')), new Set([L2]), false,
      { key: 'default/db', providerClass: CLOUD, callProvider: false, clearStatus: false, removeMarks: false, skipped: true }],
    ['provider not enabled, --force: marks and status dropped, provider not called', svc('db', withClass(CLOUD), provisionedWith(CLOUD), withIngress('198.51.100.1')), new Set([L2]), true,
      { key: 'default/db', providerClass: CLOUD, callProvider: false, clearStatus: true, removeMarks: true, skipped: false }],
    ['no marks: another controller’s Service', svc('other', withClass('example.com/lb'), withIngress('192.0.2.1')), new Set([L2]), true, undefined],
    ['a foreign finalizer only', svc('other', withFinalizer('example.com/cleanup')), new Set([L2]), true, undefined],
  ];
  it.each(rows)('%s', (_what, service, enabled, force, want) => {
    const [action] = planRelease([service], enabled, force);
    expect(action ? summary(action) : undefined).toEqual(want);
  });

  it('orders by namespace/name, so runs are repeatable', () => {
    const keys = planRelease([svc('b', provisionedWith(L2)), svc('a', withNamespace('z'), provisionedWith(L2)), svc('a', provisionedWith(L2))], new Set([L2]), false).map((a) => a.key);
    expect(keys).toEqual(['default/a', 'default/b', 'z/a']);
  });

  it('without its providers: skipped, or with --force released without calling them', () => {
    const actions = planRelease([svc('web', withClass(L2), provisionedWith(L2), withIngress('203.0.113.10'))], new Set([L2]), false);
    expect(withoutProviders(actions, 'no CRD', false).map(summary)).toEqual([{ key: 'default/web', providerClass: L2, callProvider: false, clearStatus: false, removeMarks: false, skipped: true }]);
    expect(withoutProviders(actions, 'no CRD', true).map(summary)).toEqual([{ key: 'default/web', providerClass: L2, callProvider: false, clearStatus: true, removeMarks: true, skipped: false }]);
  });
});

describe('activeLeaseHolder', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const lease = (renewTime: string | undefined, holderIdentity: string | undefined = 'c-1') => ({ spec: { holderIdentity, leaseDurationSeconds: 15, renewTime: renewTime as unknown as Date } });
  it.each([
    ['renewed 5 s ago', lease('2026-01-01T00:00:55Z'), 'c-1'],
    ['renewed 20 s ago (expired)', lease('2026-01-01T00:00:40Z'), undefined],
    ['released (no holder)', lease('2026-01-01T00:00:59Z', ''), undefined],
    ['never renewed', lease(undefined), undefined],
    ['no Lease', undefined, undefined],
  ])('%s', (_what, l, want) => {
    expect(activeLeaseHolder(l, now)).toBe(want);
  });
});

describe('parseReleaseArgs', () => {
  it('takes its own flags and passes the rest on as controller flags', () => {
    expect(parseReleaseArgs(['--all', '--providers=portico.dev/l2', '--dry-run', '--kubeconfig=/k'])).toEqual({ all: true, dryRun: true, force: false, controllerArgs: ['--providers=portico.dev/l2', '--kubeconfig=/k'] });
  });
});
