import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../../src/kube/duration.js';
import { desiredFromAnnotatedService, desiredFromExternalService, parseExpectedCodes } from '../../../src/reconcile/externalservice/spec.js';
import { es, withAddress, withHostname, withPort, withSpec } from './builders.js';

describe('desiredFromExternalService', () => {
  it('normalizes the seed db case', () => {
    const result = desiredFromExternalService(es('db', withAddress('203.0.113.10'), withPort(3306)));
    expect(result).toEqual({
      state: expect.objectContaining({
        endpoints: [{ kind: 'address', address: '203.0.113.10', field: 'spec.endpoints[0].address' }],
        ports: [{ name: '', port: 3306, targetPort: 3306, protocol: 'TCP' }],
        headless: false,
        publishEndpoints: true,
        health: undefined,
      }) as unknown,
    });
  });

  it('canonicalizes and de-duplicates addresses and hostnames', () => {
    const result = desiredFromExternalService(es('x', withAddress('2001:DB8:0::1'), withAddress('2001:db8::1'), withHostname('API.Partner.com.'), withHostname('api.partner.com'), withPort(443)));
    expect('state' in result && result.state.endpoints.map((e) => (e.kind === 'address' ? e.address : e.hostname))).toEqual(['2001:db8::1', 'api.partner.com']);
  });

  it.each([
    ['a bad address', [withAddress('203.0.113.300'), withPort(80)], 'spec.endpoints[0].address'],
    ['both address and hostname', [withSpec({ endpoints: [{ address: '198.51.100.1', hostname: 'a.b' }] }), withPort(80)], 'spec.endpoints[0]'],
    ['two unnamed ports', [withAddress('198.51.100.1'), withPort(80), withPort(81)], 'spec.ports[1].name'],
    ['no endpoints', [withPort(80)], 'spec.endpoints'],
    ['a timeout above the interval', [withAddress('198.51.100.1'), withPort(80), withSpec({ healthCheck: { protocol: 'TCP', interval: '1s', timeout: '2s' } })], 'spec.healthCheck.timeout'],
    ['bad expected codes', [withAddress('198.51.100.1'), withPort(80), withSpec({ healthCheck: { protocol: 'HTTP', expectedCodes: '2xx' } })], 'spec.healthCheck.expectedCodes'],
    ['minRefresh above maxRefresh', [withAddress('198.51.100.1'), withPort(80), withSpec({ resolve: { minRefresh: '10m', maxRefresh: '1m' } })], 'spec.resolve.minRefresh'],
  ])('names the field for %s', (_, changes, field) => {
    const result = desiredFromExternalService(es('x', ...changes));
    expect('problems' in result && result.problems.map((p) => p.field)).toContain(field);
  });

  it('fills health-check defaults from the first port', () => {
    const result = desiredFromExternalService(es('x', withAddress('198.51.100.1'), withPort(443, { targetPort: 8443 }), withSpec({ healthCheck: { protocol: 'HTTPS', path: '/healthz' } })));
    expect('state' in result && result.state.health).toEqual({ protocol: 'HTTPS', port: 8443, path: '/healthz', expectedCodes: [[200, 399]], intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 });
  });
});

describe('desiredFromAnnotatedService', () => {
  const service = (annotation: string, ports = [{ port: 5432 }], selector?: Record<string, string>): V1Service => ({ metadata: { name: 'legacy', annotations: { 'portico.dev/external-endpoints': annotation } }, spec: { ports, ...(selector ? { selector } : {}) } });

  it('reads ip, ip:port, [v6]:port and hostnames', () => {
    const result = desiredFromAnnotatedService(service('198.51.100.1, 198.51.100.2:5433,[2001:db8::1]:5434, db.partner.com'));
    expect('state' in result && result.state.endpoints.map((e) => [e.kind === 'address' ? e.address : e.hostname, e.targetPort])).toEqual([
      ['198.51.100.1', undefined],
      ['198.51.100.2', 5433],
      ['2001:db8::1', 5434],
      ['db.partner.com', undefined],
    ]);
  });

  it.each([
    ['a Service with a selector', service('198.51.100.1', [{ port: 1 }], { app: 'x' }), 'spec.selector'],
    ['a per-endpoint port with two ports', service('198.51.100.1:80', [{ port: 1 }, { port: 2 }]), 'metadata.annotations[portico.dev/external-endpoints]'],
    ['garbage', service('not an address!'), 'metadata.annotations[portico.dev/external-endpoints]'],
    ['an empty list', service(' , '), 'metadata.annotations[portico.dev/external-endpoints]'],
  ])('refuses %s', (_, svc, field) => {
    const result = desiredFromAnnotatedService(svc);
    expect('problems' in result && result.problems.map((p) => p.field)).toContain(field);
  });
});

describe('parsers', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['10', undefined],
    ['-1s', undefined],
  ])('duration %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    ['200', [[200, 200]]],
    ['200-299,301', [[200, 299], [301, 301]]],
    ['299-200', undefined],
    ['2xx', undefined],
    ['600', undefined],
  ])('expected codes %s', (text, ranges) => expect(parseExpectedCodes(text)).toEqual(ranges));
});
