/** The controller flags of the ExternalService module, parsed into its settings. */
import type { ExternalServiceSettings } from './controller.js';
import { parseAllowList, parseCIDRList } from './policy.js';

export type { ExternalServiceSettings } from './controller.js';

export const EXTERNAL_SERVICE_FLAGS = {
  'external-services': { type: 'boolean', default: false, description: 'run the ExternalService controller (needs the ExternalService CRD installed)' },
  'external-service-cidrs': { type: 'string', default: '', description: "the cluster's Service CIDRs, refused as external endpoints (ServiceCIDR objects are added automatically)" },
  'external-pod-cidrs': { type: 'string', default: '', description: "the cluster's Pod CIDRs, refused as external endpoints" },
  'external-deny': { type: 'string', default: '', description: 'more CIDRs no ExternalService may publish' },
  'external-allow': { type: 'string', default: '', description: 'narrow what namespaces may publish: ns=cidr[,cidr];*=cidr (unset: anything the policy allows)' },
  'external-dns-servers': { type: 'string', default: '', description: "DNS servers for ExternalService hostnames, host:port comma list (default: the system's)" },
} as const;

export function parseExternalServiceFlags(values: Readonly<Record<string, string | boolean | undefined>>, problems: string[]): ExternalServiceSettings | undefined {
  if (values['external-services'] !== true) return undefined;
  const list = (flag: string, parse: (text: string) => unknown): unknown => {
    try {
      return parse(String(values[flag] ?? ''));
    } catch (error) {
      problems.push(`--${flag}: ${(error as Error).message}`);
      return [];
    }
  };
  return {
    policy: {
      serviceCIDRs: list('external-service-cidrs', parseCIDRList) as ReturnType<typeof parseCIDRList>,
      podCIDRs: list('external-pod-cidrs', parseCIDRList) as ReturnType<typeof parseCIDRList>,
      deny: list('external-deny', parseCIDRList) as ReturnType<typeof parseCIDRList>,
      allow: list('external-allow', parseAllowList) as ReturnType<typeof parseAllowList>,
    },
    dnsServers: String(values['external-dns-servers'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}
