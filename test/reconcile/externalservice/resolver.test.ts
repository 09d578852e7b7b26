import { describe, expect, it } from 'vitest';
import { HostResolver, type DnsClient, type DnsRecord } from '../../../src/reconcile/externalservice/resolver.js';
import type { ResolveSettings } from '../../../src/reconcile/externalservice/spec.js';
import { FakeClock } from '../../fakes/clock.js';

type Answer = DnsRecord[] | string; // a string is an error code

class ScriptedDns implements DnsClient {
  v4: Answer = [];
  v6: Answer = 'ENODATA';
  queries = 0;
  resolve4(): Promise<DnsRecord[]> {
    this.queries++;
    return answer(this.v4);
  }
  resolve6(): Promise<DnsRecord[]> {
    return answer(this.v6);
  }
}

function answer(a: Answer): Promise<DnsRecord[]> {
  if (typeof a === 'string') return Promise.reject(Object.assign(new Error(a), { code: a }));
  return Promise.resolve(a);
}

const SETTINGS: ResolveSettings = { minRefreshMs: 5_000, maxRefreshMs: 60_000, keepStaleMs: 120_000 };

describe('HostResolver', () => {
  it.each([
    ['a TTL inside the bounds', 30, 30_000],
    ['a TTL below minRefresh', 1, 5_000],
    ['a TTL above maxRefresh', 3600, 60_000],
  ])('refreshes after %s', async (_, ttl, refreshMs) => {
    const dns = new ScriptedDns();
    dns.v4 = [{ address: '198.51.100.1', ttl }];
    const clock = new FakeClock();
    const resolver = new HostResolver(dns, clock);
    expect(await resolver.resolve('api.partner.com', SETTINGS)).toMatchObject({ addresses: ['198.51.100.1'], refreshInMs: refreshMs, stale: false });
    await clock.advance(refreshMs - 1);
    await resolver.resolve('api.partner.com', SETTINGS);
    expect(dns.queries).toBe(1);
    await clock.advance(1);
    await resolver.resolve('api.partner.com', SETTINGS);
    expect(dns.queries).toBe(2);
  });

  it('merges A and AAAA answers; one family missing is fine', async () => {
    const dns = new ScriptedDns();
    dns.v4 = [{ address: '198.51.100.1', ttl: 60 }];
    dns.v6 = [{ address: '2001:db8::1', ttl: 10 }];
    const result = await new HostResolver(dns, new FakeClock()).resolve('h', SETTINGS);
    expect(result.addresses).toEqual(['198.51.100.1', '2001:db8::1']);
    expect(result.refreshInMs).toBe(10_000);
  });

  it.each([
    ['ENOTFOUND', 'NXDOMAIN'],
    ['ESERVFAIL', 'SERVFAIL'],
    ['ETIMEOUT', 'timeout'],
  ])('keeps the last good answer for keepStaleFor after %s, then drops it', async (code, text) => {
    const dns = new ScriptedDns();
    dns.v4 = [{ address: '198.51.100.1', ttl: 5 }];
    const clock = new FakeClock();
    const resolver = new HostResolver(dns, clock);
    await resolver.resolve('h', SETTINGS);
    dns.v4 = code;
    dns.v6 = code;
    await clock.advance(5_000);
    expect(await resolver.resolve('h', SETTINGS)).toMatchObject({ addresses: ['198.51.100.1'], stale: true, error: text });
    await clock.advance(SETTINGS.keepStaleMs);
    expect(await resolver.resolve('h', SETTINGS)).toMatchObject({ addresses: [], stale: false, error: text });
    // Recovery clears the error.
    dns.v4 = [{ address: '198.51.100.2', ttl: 5 }];
    dns.v6 = 'ENODATA';
    await clock.advance(SETTINGS.minRefreshMs);
    const recovered = await resolver.resolve('h', SETTINGS);
    expect(recovered.addresses).toEqual(['198.51.100.2']);
    expect(recovered.error).toBeUndefined();
  });

  it('shares one lookup between concurrent callers', async () => {
    const dns = new ScriptedDns();
    dns.v4 = [{ address: '198.51.100.1', ttl: 5 }];
    const resolver = new HostResolver(dns, new FakeClock());
    await Promise.all([resolver.resolve('h', SETTINGS), resolver.resolve('h', SETTINGS), resolver.resolve('h', SETTINGS)]);
    expect(dns.queries).toBe(1);
  });
});
