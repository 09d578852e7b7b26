/**
 * Hostnames -> A/AAAA answers with their TTLs, cached per name. A failed lookup (NXDOMAIN,
 * SERVFAIL, timeout) keeps the last good answer for a bounded time and says so; every answer
 * is checked against the address policy by the caller, every time (DNS rebinding).
 */
import { Resolver } from 'node:dns/promises';
import type { Clock } from '../../kube/clock.js';
import type { ResolveSettings } from './spec.js';

export interface DnsRecord {
  address: string;
  ttl: number;
}

/** The two calls used; node:dns's Resolver fits. */
export interface DnsClient {
  resolve4(hostname: string, options: { ttl: true }): Promise<DnsRecord[]>;
  resolve6(hostname: string, options: { ttl: true }): Promise<DnsRecord[]>;
}

/** `127.0.0.1:5353,[::1]:53` -> a node:dns Resolver on those servers (system servers when empty). */
export function dnsClient(servers: readonly string[], timeoutMs = 2_000): DnsClient {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

export interface Resolution {
  hostname: string;
  addresses: string[];
  /** Set when the last lookup failed and `addresses` is the last good answer (or empty). */
  error?: string;
  stale: boolean;
  /** When to look again. */
  refreshInMs: number;
}

interface Entry {
  addresses: string[];
  lastGoodAt: number | undefined;
  nextAt: number;
  error: string | undefined;
  inflight: Promise<void> | undefined;
}

const NO_DATA = new Set(['ENODATA']);

function errorText(error: unknown): string {
  const code = (error as { code?: string }).code;
  switch (code) {
    case 'ENOTFOUND':
      return 'NXDOMAIN';
    case 'ESERVFAIL':
      return 'SERVFAIL';
    case 'ETIMEOUT':
      return 'timeout';
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'EREFUSED':
      return 'REFUSED';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}

export class HostResolver {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly dns: DnsClient,
    private readonly clock: Clock,
    private readonly onQuery?: (result: 'ok' | 'error') => void,
  ) {}

  /** The current answer for `hostname`, looking it up when due. */
  async resolve(hostname: string, settings: ResolveSettings): Promise<Resolution> {
    let entry = this.entries.get(hostname);
    if (!entry) {
      entry = { addresses: [], lastGoodAt: undefined, nextAt: 0, error: undefined, inflight: undefined };
      this.entries.set(hostname, entry);
    }
    if (this.clock.now() >= entry.nextAt) {
      entry.inflight ??= this.lookup(hostname, entry, settings).finally(() => {
        entry.inflight = undefined;
      });
      await entry.inflight;
    }
    const now = this.clock.now();
    let addresses = entry.addresses;
    let stale = false;
    if (entry.error !== undefined) {
      const fresh = entry.lastGoodAt !== undefined && now - entry.lastGoodAt <= settings.keepStaleMs;
      stale = fresh && addresses.length > 0;
      if (!fresh) addresses = [];
    }
    return { hostname, addresses, stale, refreshInMs: Math.max(0, entry.nextAt - now), ...(entry.error !== undefined ? { error: entry.error } : {}) };
  }

  /** Names no ExternalService uses any more. */
  retain(hostnames: ReadonlySet<string>): void {
    for (const name of this.entries.keys()) if (!hostnames.has(name)) this.entries.delete(name);
  }

  private async lookup(hostname: string, entry: Entry, settings: ResolveSettings): Promise<void> {
    const [v4, v6] = await Promise.allSettled([this.dns.resolve4(hostname, { ttl: true }), this.dns.resolve6(hostname, { ttl: true })]);
    const records: DnsRecord[] = [];
    const errors: string[] = [];
    for (const r of [v4, v6]) {
      if (r.status === 'fulfilled') records.push(...r.value);
      else if (!NO_DATA.has((r.reason as { code?: string }).code ?? '')) errors.push(errorText(r.reason));
    }
    const now = this.clock.now();
    // One family answering is an answer; both failing (or NXDOMAIN) is a failure.
    if (records.length === 0 && errors.length > 0) {
      this.onQuery?.('error');
      entry.error = errors[0];
      entry.nextAt = now + settings.minRefreshMs;
      return;
    }
    this.onQuery?.('ok');
    const ttlMs = records.length > 0 ? Math.min(...records.map((r) => r.ttl)) * 1000 : settings.minRefreshMs;
    entry.addresses = [...new Set(records.map((r) => r.address))];
    entry.lastGoodAt = now;
    entry.error = records.length === 0 ? 'no A or AAAA records' : undefined;
    entry.nextAt = now + Math.min(settings.maxRefreshMs, Math.max(settings.minRefreshMs, ttlMs));
  }
}
