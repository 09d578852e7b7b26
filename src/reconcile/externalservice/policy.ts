/**
 * Which addresses an ExternalService may publish. Hand-written endpoints are a known way to
 * reach what one should not (CVE-2021-25740, SSRF to cloud metadata), so every literal address
 * and every DNS answer passes here, every time it is seen.
 */
import { formatIP, parseCIDR, rangeContains, tryParseIP, type CIDR, type IPAddress } from '../../ipam/ip.js';

export const REFUSAL_REASONS = ['InvalidAddress', 'Unspecified', 'Loopback', 'LinkLocal', 'LinkLocalMulticast', 'CloudMetadata', 'ServiceCIDR', 'PodCIDR', 'Denied', 'NotAllowed'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface AllowRule {
  /** Namespace names, or `*` for every namespace without a rule of its own. */
  namespace: string;
  cidrs: readonly CIDR[];
}

export interface AddressPolicy {
  serviceCIDRs: readonly CIDR[];
  podCIDRs: readonly CIDR[];
  deny: readonly CIDR[];
  allow: readonly AllowRule[];
}

export const EMPTY_POLICY: AddressPolicy = { serviceCIDRs: [], podCIDRs: [], deny: [], allow: [] };

export type PolicyVerdict = { allowed: true; ip: IPAddress } | { allowed: false; reason: RefusalReason; detail: string };

interface BuiltinRule {
  reason: RefusalReason;
  cidrs: readonly CIDR[];
  detail: string;
}

// The apiserver refuses the first four classes for Endpoints/EndpointSlices too (ValidateEndpointIP).
const BUILTIN: readonly BuiltinRule[] = [
  { reason: 'Unspecified', cidrs: ['0.0.0.0/8', '::/128'].map(parseCIDR), detail: 'unspecified address' },
  { reason: 'Loopback', cidrs: ['127.0.0.0/8', '::1/128'].map(parseCIDR), detail: 'loopback address' },
  // Metadata before link-local: the more specific reason is the useful one.
  { reason: 'CloudMetadata', cidrs: ['169.254.169.254/32', 'fd00:ec2::254/128', '100.100.100.200/32'].map(parseCIDR), detail: 'cloud metadata address' },
  { reason: 'LinkLocal', cidrs: ['169.254.0.0/16', 'fe80::/10'].map(parseCIDR), detail: 'link-local address' },
  { reason: 'LinkLocalMulticast', cidrs: ['224.0.0.0/24', 'ff02::/16'].map(parseCIDR), detail: 'link-local multicast address' },
];

function within(cidrs: readonly CIDR[], ip: IPAddress): CIDR | undefined {
  return cidrs.find((c) => rangeContains(c, ip));
}

function cidrText(c: CIDR): string {
  return `${formatIP({ family: c.family, value: c.start })}/${String(c.prefixLength)}`;
}

/** Whether `namespace` may publish `text` (an address as written or as DNS answered). */
export function checkAddress(policy: AddressPolicy, namespace: string, text: string): PolicyVerdict {
  const ip = tryParseIP(text);
  if (!ip) return { allowed: false, reason: 'InvalidAddress', detail: 'not a plain IPv4 or IPv6 address (IPv4-mapped IPv6 and zones are refused)' };
  for (const rule of BUILTIN) if (within(rule.cidrs, ip)) return { allowed: false, reason: rule.reason, detail: rule.detail };
  let hit = within(policy.serviceCIDRs, ip);
  if (hit) return { allowed: false, reason: 'ServiceCIDR', detail: `inside the cluster's Service CIDR ${cidrText(hit)}` };
  hit = within(policy.podCIDRs, ip);
  if (hit) return { allowed: false, reason: 'PodCIDR', detail: `inside the cluster's Pod CIDR ${cidrText(hit)}` };
  hit = within(policy.deny, ip);
  if (hit) return { allowed: false, reason: 'Denied', detail: `inside ${cidrText(hit)}, which the administrator's deny list names` };
  const own = policy.allow.filter((r) => r.namespace === namespace);
  const rules = own.length > 0 ? own : policy.allow.filter((r) => r.namespace === '*');
  if (rules.length > 0 && !rules.some((r) => within(r.cidrs, ip))) {
    return { allowed: false, reason: 'NotAllowed', detail: `outside what the administrator allows namespace ${namespace} (${rules.flatMap((r) => r.cidrs.map(cidrText)).slice(0, 4).join(', ')})` };
  }
  return { allowed: true, ip };
}

/** `a/8,b/16` -> CIDRs; throws AddressParseError naming the bad entry. */
export function parseCIDRList(text: string): CIDR[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseCIDR);
}

/** `team-a=198.51.100.0/24,2001:db8::/32;*=192.0.2.0/24` -> allow rules. Throws on bad input. */
export function parseAllowList(text: string): AllowRule[] {
  return text
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const eq = entry.indexOf('=');
      if (eq <= 0) throw new Error(`allow entry ${entry.slice(0, 80)}: expected namespace=cidr[,cidr]`);
      return { namespace: entry.slice(0, eq).trim(), cidrs: parseCIDRList(entry.slice(eq + 1)) };
    });
}
