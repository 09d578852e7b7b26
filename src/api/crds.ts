/**
 * The CustomResourceDefinitions Portico installs, built here so that the manifests in
 * deploy/crds/ are generated from one source (`npm run generate`) and a test keeps them equal.
 * Every field has a description (`kubectl explain`), and what the API server can check at
 * apply time it checks here (CEL rules, formats), so a typo fails on `kubectl apply` instead of
 * showing only as `Ready=False` later. The controller still validates everything itself.
 */
import { ADDRESS_POOL_KIND, ADDRESS_POOL_PLURAL } from './address-pool.js';
import { EXTERNAL_SERVICE_KIND, EXTERNAL_SERVICE_PLURAL } from './external-service.js';
import { API_GROUP, API_VERSION } from './types.js';

type Schema = Record<string, unknown>;

interface Rule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueDuplicate';
}

/** Up to 64 characters of `self`, for messages that quote the entry. */
const quoted = "'\"' + (size(self) > 64 ? self.substring(0, 64) + '...' : self) + '\"'";

/** `'/0'` to `'/128'`: CEL's `string(int)` has no size bound, so the cost estimator would refuse it. */
const PREFIXES = `[${Array.from({ length: 129 }, (_, i) => `'/${i}'`).join(', ')}]`;
const first = "self.split('-')[0]";
const last = "self.split('-')[1]";

/**
 * A range's first address is not after its last. CEL has no ordering on IP addresses and no
 * loops, so: the range is reversed when, at the first bit q where the two differ (b is inside
 * a/q but not a/(q+1)), the first address has a 1 (the network address of a/q, whose bit q is 0,
 * is not inside a/(q+1)). The iteration is what limits `addresses` to 64 entries (cost budget).
 */
const rangeInOrder = [
  `!self.contains('-') || self.contains('/') || self.split('-').size() != 2 || !isIP(${first}) || !isIP(${last})`,
  `ip(${first}).family() != ip(${last}).family() || ip(${first}) == ip(${last})`,
  `!(ip(${first}).family() == 4 ? lists.range(32) : lists.range(128)).exists(q,` +
    ` cidr(${first} + ${PREFIXES}[q]).containsIP(${last})` +
    ` && !cidr(${first} + ${PREFIXES}[q + 1]).containsIP(${last})` +
    ` && !cidr(${first} + ${PREFIXES}[q + 1]).containsIP(cidr(${first} + ${PREFIXES}[q]).masked().ip()))`,
].join(' || ');

/** One `spec.addresses` entry. Rules are independent so a typo gets the one message that fits it. */
const addressEntryRules: Rule[] = [
  {
    rule: "self.contains('/') || self.contains('-')",
    messageExpression: `'entry ' + ${quoted} + ' is neither a CIDR (192.0.2.0/28) nor a range (192.0.2.10-192.0.2.20); a single address is written 192.0.2.7/32 or 2001:db8::7/128'`,
  },
  {
    rule: "!(self.contains('/') && self.contains('-'))",
    messageExpression: `'entry ' + ${quoted} + ' mixes a CIDR and a range; write one of them'`,
  },
  {
    rule: "!self.contains('/') || self.contains('-') || isCIDR(self)",
    messageExpression: `'entry ' + ${quoted} + ' is not a valid CIDR: expected address/prefix-length such as 192.0.2.0/28 or 2001:db8::/120'`,
  },
  {
    rule: "!self.contains('/') || self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()",
    messageExpression: `'entry ' + ${quoted} + ' has host bits set: write the network address (192.0.2.0/24, not 192.0.2.5/24)'`,
  },
  {
    rule: "!self.contains('-') || self.contains('/') || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))",
    messageExpression: `'entry ' + ${quoted} + ' is not a valid range: expected first-last with two addresses, such as 192.0.2.10-192.0.2.20'`,
  },
  {
    rule: "!self.contains('-') || self.contains('/') || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()",
    messageExpression: `'range ' + ${quoted} + ' mixes IPv4 and IPv6'`,
  },
  { rule: rangeInOrder, messageExpression: `'range ' + ${quoted} + ' is reversed: its first address comes after its last'` },
];

function selectorSchema(what: string): Schema {
  return {
    type: 'object',
    description: `${what} A label selector: matchLabels and matchExpressions are ANDed; an empty selector matches everything.`,
    properties: {
      matchLabels: { type: 'object', description: 'Labels that must all be present with exactly these values.', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 63 } },
      matchExpressions: {
        type: 'array',
        description: 'Requirements that must all hold.',
        maxItems: 32,
        items: {
          type: 'object',
          description: 'One requirement on one label key.',
          required: ['key', 'operator'],
          properties: {
            key: { type: 'string', description: 'The label key.', minLength: 1, maxLength: 317 },
            operator: { type: 'string', description: 'In and NotIn compare against values; Exists and DoesNotExist test only the key.', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
            values: { type: 'array', description: 'The values for In and NotIn; must be empty for Exists and DoesNotExist.', maxItems: 64, items: { type: 'string', description: 'A label value.', maxLength: 63 } },
          },
          'x-kubernetes-validations': [
            {
              rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
              messageExpression: "self.operator in ['In', 'NotIn'] ? 'operator ' + self.operator + ' needs at least one value' : 'operator ' + self.operator + ' takes no values'",
              reason: 'FieldValueInvalid',
            },
          ] satisfies Rule[],
        },
      },
    },
    'x-kubernetes-map-type': 'atomic',
  };
}

const conditionsSchema: Schema = {
  type: 'array',
  description: 'The latest observations of the pool (metav1.Condition). Ready is False, with a reason naming the field, when the pool cannot be used.',
  maxItems: 16,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    description: 'One condition.',
    required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
    properties: {
      type: { type: 'string', description: 'The condition type, such as Ready.', maxLength: 316 },
      status: { type: 'string', description: 'True, False or Unknown.', enum: ['True', 'False', 'Unknown'] },
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The metadata.generation this condition was computed from.' },
      lastTransitionTime: { type: 'string', format: 'date-time', description: 'When status last changed.' },
      reason: { type: 'string', description: 'A CamelCase machine-readable reason for the status.', maxLength: 1024 },
      message: { type: 'string', description: 'A human-readable explanation, naming the field at fault.', maxLength: 32768 },
    },
  },
};

const counter = (what: string): Schema => ({ type: 'integer', format: 'int64', minimum: 0, description: what });

const addressPoolSchema: Schema = {
  type: 'object',
  description: 'A pool of addresses the bare-metal provider (portico.dev/l2) assigns to LoadBalancer Services and announces with ARP/NDP.',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: 'The versioned schema of this object: portico.dev/v1alpha1.' },
    kind: { type: 'string', description: 'The REST resource this object represents: AddressPool.' },
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      description: 'Which addresses the pool holds, who may get them and how they are announced.',
      required: ['addresses'],
      properties: {
        addresses: {
          type: 'array',
          minItems: 1,
          maxItems: 64,
          'x-kubernetes-list-type': 'set',
          description: 'CIDRs (192.0.2.0/28, 2001:db8::/120) and inclusive ranges (192.0.2.10-192.0.2.20), IPv4 and IPv6. A single address is a /32 or /128.',
          items: {
            type: 'string',
            description: 'One CIDR without host bits, or one range first-last (same family, first not after last).',
            minLength: 3,
            maxLength: 100,
            pattern: '^[0-9A-Fa-f.:/-]+$',
            'x-kubernetes-validations': addressEntryRules,
          },
        },
        autoAssign: { type: 'boolean', default: true, description: 'When false, only Services that name this pool or request one of its addresses get an address from it. Default: true.' },
        avoidBuggyIPs: { type: 'boolean', default: false, description: 'Skip IPv4 addresses ending in .0 and .255, which some clients treat as broadcast. Default: false.' },
        allowSpecialAddresses: {
          type: 'boolean',
          default: false,
          description: 'Also hand out special-purpose addresses (unspecified, loopback, link-local, multicast, broadcast) and the network/broadcast address of CIDR entries. The Service and Pod CIDRs and node addresses are never handed out. Default: false.',
        },
        allocation: {
          type: 'object',
          description: 'Which Services may get addresses from this pool, and in which order pools are tried.',
          properties: {
            priority: { type: 'integer', minimum: 0, maximum: 1_000_000, description: 'Lower is tried first; pools without a priority come last.' },
            namespaces: {
              type: 'array',
              description: 'Only Services in these namespaces may get addresses from this pool.',
              maxItems: 256,
              'x-kubernetes-list-type': 'set',
              items: { type: 'string', description: 'A namespace name.', maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' },
            },
            namespaceSelector: selectorSchema('Only Services in namespaces matching this selector may get addresses from this pool.'),
            serviceSelector: selectorSchema('Only Services matching this selector may get addresses from this pool.'),
            crossNamespaceSharing: { type: 'boolean', default: false, description: 'Let Services in different namespaces share an address with the same portico.dev/allow-shared-ip key. Off: sharing keys are scoped to a namespace. Default: false.' },
          },
        },
        l2: {
          type: 'object',
          description: 'How the speaker announces this pool.',
          properties: {
            interfaces: {
              type: 'array',
              description: 'Announce only on these node interfaces; empty means every interface.',
              maxItems: 64,
              'x-kubernetes-list-type': 'set',
              items: { type: 'string', description: 'A network interface name, such as eth0.', minLength: 1, maxLength: 15, pattern: '^[^\\s/:]+$' },
            },
            nodeSelector: selectorSchema('Only nodes matching this selector may announce this pool\'s addresses.'),
          },
        },
      },
    },
    status: {
      type: 'object',
      description: 'What the controller observed; written by the controller only.',
      properties: {
        assignedIPv4: counter('IPv4 addresses of this pool assigned to Services.'),
        assignedIPv6: counter('IPv6 addresses of this pool assigned to Services.'),
        availableIPv4: counter('IPv4 addresses of this pool still free.'),
        availableIPv6: counter('IPv6 addresses of this pool still free, capped at 2^53-1 for very large pools.'),
        observedGeneration: counter('The metadata.generation the counters and conditions were computed from.'),
        conditions: conditionsSchema,
        lastValidSpec: { type: 'string', maxLength: 65536, description: 'The last valid spec (JSON), kept while the current one is invalid so that a new leader takes no address away.' },
      },
    },
  },
};

interface CrdOptions {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Cluster' | 'Namespaced';
  printerColumns: Record<string, unknown>[];
  schema: Schema;
}

/** One served, stored version with a status subresource: the shape of every Portico CRD. */
function crd(o: CrdOptions): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${o.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: o.scope,
      names: { kind: o.kind, listKind: `${o.kind}List`, plural: o.plural, singular: o.singular, shortNames: o.shortNames, categories: ['portico'] },
      versions: [{ name: API_VERSION, served: true, storage: true, subresources: { status: {} }, additionalPrinterColumns: o.printerColumns, schema: { openAPIV3Schema: o.schema } }],
    },
  };
}

export function addressPoolCrd(): Record<string, unknown> {
  return crd({
    kind: ADDRESS_POOL_KIND,
    plural: ADDRESS_POOL_PLURAL,
    singular: 'addresspool',
    shortNames: ['apool'],
    scope: 'Cluster',
    printerColumns: [
      { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses' },
      { name: 'Auto', type: 'boolean', jsonPath: '.spec.autoAssign' },
      { name: 'Assigned-v4', type: 'integer', jsonPath: '.status.assignedIPv4' },
      { name: 'Free-v4', type: 'integer', jsonPath: '.status.availableIPv4' },
      { name: 'Assigned-v6', type: 'integer', jsonPath: '.status.assignedIPv6', priority: 1 },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      // `kubectl get apool -o wide` says why a pool is not Ready.
      { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    schema: addressPoolSchema,
  });
}

/** Every CRD Portico installs, keyed by the file name under deploy/crds/. */
export function allCrds(): Record<string, Record<string, unknown>> {
  return { [`${API_GROUP}_${ADDRESS_POOL_PLURAL}.yaml`]: addressPoolCrd(), [`${API_GROUP}_${EXTERNAL_SERVICE_PLURAL}.yaml`]: externalServiceCrd() };
}

const durationSchema = (description: string): Schema => ({ type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$', maxLength: 20, description });

const externalServiceSchema: Schema = {
  type: 'object',
  description: 'External backends (static IPs and/or hostnames) behind a selectorless Service whose EndpointSlices Portico writes, health-checks and keeps resolved.',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      description: 'What to publish and how to check it.',
      required: ['endpoints', 'ports'],
      properties: {
        endpoints: {
          type: 'array',
          minItems: 1,
          maxItems: 1000,
          description: 'External backends: each an IPv4/IPv6 address or a hostname resolved to A/AAAA records.',
          items: {
            type: 'object',
            description: 'One backend: exactly one of address and hostname.',
            'x-kubernetes-validations': [{ rule: 'has(self.address) != has(self.hostname)', message: 'set exactly one of address and hostname' }],
            properties: {
              address: { type: 'string', minLength: 2, maxLength: 45, description: 'An IPv4 or IPv6 address (checked against the address policy).' },
              hostname: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\\.?$', description: 'A DNS name, resolved to A/AAAA records and re-resolved as their TTLs expire; every answer is checked against the address policy.' },
              zone: { type: 'string', maxLength: 63, description: "Copied into the EndpointSlice endpoint's zone." },
              weight: { type: 'integer', minimum: 1, maximum: 100, description: 'Relative weight hint; EndpointSlices cannot carry it, so it is informational for now.' },
            },
          },
        },
        ports: {
          type: 'array',
          minItems: 1,
          maxItems: 100,
          description: 'Ports of the generated Service; each maps a Service port to the port on the external endpoints.',
          'x-kubernetes-validations': [{ rule: 'size(self) == 1 || self.all(p, has(p.name))', message: 'every port needs a name when there is more than one' }],
          items: {
            type: 'object',
            required: ['port'],
            properties: {
              name: { type: 'string', maxLength: 15, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Port name; the Service port and the EndpointSlice port match by it.' },
              port: { type: 'integer', minimum: 1, maximum: 65535, description: 'The Service port in-cluster clients connect to.' },
              targetPort: { type: 'integer', minimum: 1, maximum: 65535, description: 'The port on the external endpoints (default: port).' },
              protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'], default: 'TCP', description: 'Transport protocol.' },
              appProtocol: { type: 'string', maxLength: 253, description: 'Application protocol hint, copied to the Service and EndpointSlice ports.' },
            },
          },
        },
        service: {
          type: 'object',
          description: 'The generated selectorless Service.',
          properties: {
            type: { type: 'string', enum: ['ClusterIP', 'Headless'], default: 'ClusterIP', description: 'ClusterIP, or Headless (clusterIP: None). Changing it needs the Service recreated.' },
            labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 }, maxProperties: 64, description: 'Labels put on the Service.' },
            annotations: { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 }, maxProperties: 64, description: 'Annotations put on the Service.' },
          },
        },
        healthCheck: {
          type: 'object',
          description: 'Active health checks; failing endpoints stay published with ready: false.',
          required: ['protocol'],
          properties: {
            protocol: { type: 'string', enum: ['TCP', 'HTTP', 'HTTPS'], description: 'TCP connect, or an HTTP(S) GET whose status code must be expected.' },
            port: { type: 'integer', minimum: 1, maximum: 65535, description: "Port to probe (default: the first port's targetPort)." },
            path: { type: 'string', maxLength: 1024, pattern: '^/', description: 'HTTP(S) path (default /).' },
            expectedCodes: { type: 'string', maxLength: 100, pattern: '^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$', description: 'Healthy HTTP status codes: 200, 200-299 or 200,204,301-302 (default 200-399).' },
            interval: durationSchema('Between probes of one address (default 10s, at least 100ms).'),
            timeout: durationSchema('Deadline of one probe (default 2s, at most the interval).'),
            healthyThreshold: { type: 'integer', minimum: 1, maximum: 10, description: 'Consecutive successes before an address is ready again (default 2).' },
            unhealthyThreshold: { type: 'integer', minimum: 1, maximum: 10, description: 'Consecutive failures before an address is marked not ready (default 3).' },
          },
        },
        resolve: {
          type: 'object',
          description: 'How hostnames are kept resolved.',
          properties: {
            minRefresh: durationSchema('Re-resolve no sooner than this, whatever the TTL (default 5s).'),
            maxRefresh: durationSchema('Re-resolve at least this often, whatever the TTL (default 5m).'),
            keepStaleFor: durationSchema('After NXDOMAIN, SERVFAIL or timeouts keep the last good answer this long (default 10m).'),
          },
        },
        publishEndpoints: { type: 'boolean', default: true, description: 'Also maintain the v1 Endpoints object of the same name (labelled skip-mirror).' },
      },
    },
    status: {
      type: 'object',
      description: 'What the controller published.',
      properties: {
        observedGeneration: { type: 'integer', format: 'int64', description: 'The generation this status describes.' },
        endpoints: { type: 'string', description: 'Ready/total published endpoints, e.g. 2/3.' },
        readyEndpoints: { type: 'integer', description: 'Published endpoints that are ready.' },
        totalEndpoints: { type: 'integer', description: 'All published endpoints.' },
        addresses: {
          type: 'array',
          description: 'Every published address.',
          items: {
            type: 'object',
            required: ['address', 'ready'],
            properties: {
              address: { type: 'string', description: 'The address.' },
              hostname: { type: 'string', description: 'The hostname it was resolved from.' },
              ready: { type: 'boolean', description: 'Whether it passes its health check.' },
            },
          },
        },
        conditions: conditionsSchema,
      },
    },
  },
};

export function externalServiceCrd(): Record<string, unknown> {
  return crd({
    kind: EXTERNAL_SERVICE_KIND,
    plural: EXTERNAL_SERVICE_PLURAL,
    singular: 'externalservice',
    shortNames: ['xsvc'],
    scope: 'Namespaced',
    printerColumns: [
      { name: 'Endpoints', type: 'string', jsonPath: '.status.endpoints', description: 'ready/total' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Degraded', type: 'string', jsonPath: '.status.conditions[?(@.type=="Degraded")].status', priority: 1 },
      { name: 'Rejected', type: 'string', jsonPath: '.status.conditions[?(@.type=="Rejected")].status', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    schema: externalServiceSchema,
  });
}
