/**
 * The CustomResourceDefinitions Portico installs, built here so that the manifests in
 * deploy/crds/ are generated from one source (`npm run generate`) and a test keeps them equal.
 */
import { ADDRESS_POOL_KIND, ADDRESS_POOL_PLURAL } from './address-pool.js';
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
  return { [`${API_GROUP}_${ADDRESS_POOL_PLURAL}.yaml`]: addressPoolCrd() };
}
