import { describe, expect, it } from 'vitest';
import { annotation, clientToken, instanceIdOf, parseService, specHash } from '../../../src/providers/aliyun/spec.js';
import { parseAliyunSettings } from '../../../src/providers/aliyun/module.js';
import { withServicePorts, withSpec, type ServiceOption } from '../../builders/service.js';
import { service, withAliyun, withNodePorts, withSourceRanges } from './harness.js';

function problems(...options: ServiceOption[]): string[] {
  const parsed = parseService(service('web', ...options));
  return 'problems' in parsed ? parsed.problems.map((p) => p.field) : [];
}
const field = (suffix: string): string => `metadata.annotations[${annotation(suffix)}]`;

describe('parseService', () => {
  const bad: [string, ServiceOption[], string][] = [
    ['address type', [withAliyun('address-type', 'public')], field('address-type')],
    ['charge type', [withAliyun('charge-type', 'free')], field('charge-type')],
    ['bandwidth', [withAliyun('bandwidth', '0')], field('bandwidth')],
    ['spec', [withAliyun('spec', 'large')], field('spec')],
    ['vswitch', [withAliyun('vswitch-id', 'subnet-1')], field('vswitch-id')],
    ['reuse id', [withAliyun('id', 'i-123')], field('id')],
    ['delete protection', [withAliyun('delete-protection', 'yes')], field('delete-protection')],
    ['scheduler', [withAliyun('scheduler', 'random')], field('scheduler')],
    ['healthy threshold', [withAliyun('healthy-threshold', '11')], field('healthy-threshold')],
    ['uri without http', [withAliyun('health-check-uri', '/h')], field('health-check-type')],
    ['reserved tag', [withAliyun('additional-resource-tags', 'portico.dev/x=1')], field('additional-resource-tags')],
    ['SCTP', [withServicePorts({ port: 80, protocol: 'SCTP' })], 'spec.ports[0].protocol'],
    ['reserved UDP port', [withNodePorts({ port: 4789, nodePort: 30000, protocol: 'UDP' })], 'spec.ports[0].port'],
    ['no node port', [withServicePorts({ port: 80, protocol: 'TCP' })], 'spec.ports[0].nodePort'],
    ['IPv6 source range', [withSourceRanges('2001:db8::/32')], 'spec.loadBalancerSourceRanges[0]'],
  ];
  for (const [name, options, want] of bad) it(`names the field at fault: ${name}`, () => expect(problems(...options)).toContain(want));

  it('defaults: internet, delete protection on, wrr, no ACL for 0.0.0.0/0', () => {
    const parsed = parseService(service('web', withSourceRanges('0.0.0.0/0')));
    expect(parsed).toMatchObject({ desired: { addressType: 'internet', deleteProtection: 'on', listeners: [{ port: 80, protocol: 'tcp', nodePort: 30080, scheduler: 'wrr' }], sourceRanges: [] } });
  });

  it('parses additional tags', () => {
    expect(parseService(service('web', withAliyun('additional-resource-tags', 'team=a, env=prod')))).toMatchObject({ desired: { additionalTags: { team: 'a', env: 'prod' } } });
  });

  it('hash changes with the backends and the spec, not with the uid', () => {
    const a = parseService(service('web'));
    const b = parseService(service('web', withSpec({}), (s) => (s.metadata = { ...s.metadata, uid: 'other' })));
    if ('problems' in a || 'problems' in b) throw new Error('invalid');
    expect(specHash(a.desired, ['i-1'])).toBe(specHash(b.desired, ['i-1']));
    expect(specHash(a.desired, ['i-1'])).not.toBe(specHash(a.desired, ['i-2']));
  });
});

describe('instanceIdOf', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['cn-hangzhou.i-bp1abc', 'i-bp1abc'],
    ['alicloud://cn-hangzhou.i-bp1abc', 'i-bp1abc'],
    ['alicloud://i-bp1abc', 'i-bp1abc'],
    ['aws:///us-east-1a/i-0abc', undefined],
    ['kind://docker/kind/node', undefined],
    [undefined, undefined],
  ];
  for (const [input, want] of cases) it(`${String(input)} -> ${String(want)}`, () => expect(instanceIdOf(input)).toBe(want));
});

describe('clientToken', () => {
  it('is stable per cluster, uid and create parameters, and at most 64 characters', () => {
    expect(clientToken('c', 'u', { spec: 'a' })).toBe(clientToken('c', 'u', { spec: 'a' }));
    expect(clientToken('c', 'u')).not.toBe(clientToken('c', 'v'));
    expect(clientToken('c', 'u', { spec: 'a' })).not.toBe(clientToken('c', 'u', { spec: 'b' }));
    expect(clientToken('c', 'u').length).toBeLessThanOrEqual(64);
  });
});

describe('parseAliyunSettings', () => {
  it('needs a region and a cluster name, naming the flags', () => {
    const result = parseAliyunSettings({});
    expect('problems' in result && result.problems.map((p) => p.split('=')[0])).toEqual(['--aliyun-region', '--aliyun-cluster-name']);
  });
  it('splits an endpoint override into protocol and host', () => {
    expect(parseAliyunSettings({ 'aliyun-region': 'cn-hangzhou', 'aliyun-cluster-name': 'prod', 'aliyun-endpoint': 'http://127.0.0.1:8080' })).toMatchObject({ settings: { endpoint: '127.0.0.1:8080', protocol: 'http', gc: 'dry-run' } });
  });
  it('rejects an unknown gc mode', () => {
    expect(parseAliyunSettings({ 'aliyun-region': 'cn-hangzhou', 'aliyun-cluster-name': 'prod', 'aliyun-gc': 'yes' })).toEqual({ problems: ['--aliyun-gc=yes: expected off, dry-run or on'] });
  });
});
