/**
 * The CustomResourceDefinitions Portico installs, built here so that the manifests in
 * deploy/crds/ are generated from one source (`npm run generate`) and a test keeps them equal.
 */
import { ADDRESS_POOL_KIND, ADDRESS_POOL_PLURAL } from './address-pool.js';
import { EXTERNAL_SERVICE_KIND, EXTERNAL_SERVICE_PLURAL } from './external-service.js';
import { API_GROUP, API_VERSION } from './types.js';

type Schema = Record<string, unknown>;

const labelSelectorSchema: Schema = {
  type: 'object',
  description: 'A Kubernetes label selector (matchLabels AND matchExpressions).',
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      maxItems: 32,
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', maxLength: 317 },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 63 } },
        },
      },
    },
  },
  'x-kubernetes-map-type': 'atomic',
};

const conditionsSchema: Schema = {
  type: 'array',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
    properties: {
      type: { type: 'string', maxLength: 316 },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
      lastTransitionTime: { type: 'string', format: 'date-time' },
      reason: { type: 'string', maxLength: 1024 },
      message: { type: 'string', maxLength: 32768 },
    },
  },
};

const addressPoolSchema: Schema = {
  type: 'object',
  description: 'A pool of addresses the bare-metal provider (portico.dev/l2) assigns to LoadBalancer Services and announces with ARP/NDP.',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      required: ['addresses'],
      properties: {
        addresses: {
          type: 'array',
          minItems: 1,
          maxItems: 256,
          description: 'CIDRs (192.0.2.0/28, 2001:db8::/120) and inclusive ranges (192.0.2.10-192.0.2.20), IPv4 and IPv6.',
          items: { type: 'string', minLength: 3, maxLength: 100 },
        },
        autoAssign: { type: 'boolean', default: true, description: 'When false, only Services that name this pool or request one of its addresses get an address from it.' },
        avoidBuggyIPs: { type: 'boolean', default: false, description: 'Skip IPv4 addresses ending in .0 and .255.' },
        allowSpecialAddresses: {
          type: 'boolean',
          default: false,
          description: 'Also hand out special-purpose addresses (unspecified, loopback, link-local, multicast, broadcast) and the network/broadcast address of CIDR entries. The Service and Pod CIDRs and node addresses are never handed out.',
        },
        allocation: {
          type: 'object',
          properties: {
            priority: { type: 'integer', minimum: 0, maximum: 1_000_000, description: 'Lower is tried first; pools without a priority come last.' },
            namespaces: { type: 'array', maxItems: 256, items: { type: 'string', maxLength: 63 } },
            namespaceSelector: labelSelectorSchema,
            serviceSelector: labelSelectorSchema,
            crossNamespaceSharing: { type: 'boolean', default: false, description: 'Let Services in different namespaces share an address with the same portico.dev/allow-shared-ip key. Off: sharing keys are scoped to a namespace.' },
          },
        },
        l2: {
          type: 'object',
          description: 'How the speaker announces this pool.',
          properties: {
            interfaces: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 15 } },
            nodeSelector: labelSelectorSchema,
          },
        },
      },
    },
    status: {
      type: 'object',
      properties: {
        assignedIPv4: { type: 'integer', format: 'int64' },
        assignedIPv6: { type: 'integer', format: 'int64' },
        availableIPv4: { type: 'integer', format: 'int64' },
        availableIPv6: { type: 'integer', format: 'int64' },
        observedGeneration: { type: 'integer', format: 'int64' },
        conditions: conditionsSchema,
        lastValidSpec: { type: 'string', maxLength: 65536, description: 'The last valid spec (JSON), kept while the current one is invalid so that a new leader takes no address away.' },
      },
    },
  },
};

export function addressPoolCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${ADDRESS_POOL_PLURAL}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Cluster',
      names: { kind: ADDRESS_POOL_KIND, listKind: `${ADDRESS_POOL_KIND}List`, plural: ADDRESS_POOL_PLURAL, singular: 'addresspool', shortNames: ['apool'], categories: ['portico'] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses' },
            { name: 'Auto', type: 'boolean', jsonPath: '.spec.autoAssign' },
            { name: 'Assigned-v4', type: 'integer', jsonPath: '.status.assignedIPv4' },
            { name: 'Free-v4', type: 'integer', jsonPath: '.status.availableIPv4' },
            { name: 'Assigned-v6', type: 'integer', jsonPath: '.status.assignedIPv6', priority: 1 },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: addressPoolSchema },
        },
      ],
    },
  };
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
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${EXTERNAL_SERVICE_PLURAL}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: { kind: EXTERNAL_SERVICE_KIND, listKind: `${EXTERNAL_SERVICE_KIND}List`, plural: EXTERNAL_SERVICE_PLURAL, singular: 'externalservice', shortNames: ['xsvc'], categories: ['portico'] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Endpoints', type: 'string', jsonPath: '.status.endpoints', description: 'ready/total' },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Degraded', type: 'string', jsonPath: '.status.conditions[?(@.type=="Degraded")].status', priority: 1 },
            { name: 'Rejected', type: 'string', jsonPath: '.status.conditions[?(@.type=="Rejected")].status', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: externalServiceSchema },
        },
      ],
    },
  };
}
