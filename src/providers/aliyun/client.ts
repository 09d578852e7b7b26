/**
 * A small typed client over the SLB (CLB) 2014-05-15 RPC API, covering only the actions Portico
 * uses. Parameter and response names are those of the API reference; each method parses only
 * the fields the provider reads.
 */
import type { Body, Params, SlbCaller } from './transport.js';

export type Tags = Record<string, string>;

export interface LoadBalancer {
  id: string;
  name: string;
  status: string;
  address: string;
  addressType: string;
  vswitchId: string;
  spec: string;
  chargeType: string;
  bandwidth: number;
  tags: Tags;
}

export interface LoadBalancerAttribute extends LoadBalancer {
  deleteProtection: 'on' | 'off';
}

export type ListenerProtocol = 'tcp' | 'udp';

export interface HealthCheck {
  /** tcp listeners: `tcp` or `http`. */
  type?: string;
  connectPort?: number;
  connectTimeout?: number;
  healthyThreshold?: number;
  unhealthyThreshold?: number;
  interval?: number;
  uri?: string;
  domain?: string;
  httpCode?: string;
}

export interface Listener {
  port: number;
  protocol: ListenerProtocol;
  status: string;
  description: string;
  vServerGroupId: string;
  scheduler: string;
  aclStatus: string;
  aclId: string;
  aclType: string;
  healthCheck: HealthCheck;
}

export interface ListenerConfig {
  port: number;
  protocol: ListenerProtocol;
  description: string;
  vServerGroupId: string;
  scheduler: string;
  /** Per-listener bandwidth; -1 = unlimited (shares the instance's). */
  bandwidth: number;
  acl?: { id: string; type: 'white' };
  healthCheck: HealthCheck;
}

export interface BackendServer {
  serverId: string;
  port: number;
  weight: number;
}

export interface VServerGroup {
  id: string;
  name: string;
}

export interface Acl {
  id: string;
  name: string;
}

export interface CreateLoadBalancerInput {
  clientToken: string;
  name: string;
  addressType: string;
  spec?: string;
  chargeType?: string;
  bandwidth?: number;
  vswitchId?: string;
  deleteProtection: 'on' | 'off';
  tags: Tags;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}
function num(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value !== '' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}
function obj(value: unknown): Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Body) : {};
}
function arr(value: unknown): Body[] {
  return Array.isArray(value) ? value.map(obj) : [];
}

function tagParams(tags: Tags, prefix = 'Tag'): Record<string, string> {
  const out: Record<string, string> = {};
  Object.entries(tags).forEach(([key, value], i) => {
    out[`${prefix}.${i + 1}.Key`] = key;
    out[`${prefix}.${i + 1}.Value`] = value;
  });
  return out;
}

function parseLoadBalancer(raw: Body): LoadBalancer {
  const tags: Tags = {};
  for (const tag of arr(obj(raw['Tags'])['Tag'])) tags[str(tag['TagKey'])] = str(tag['TagValue']);
  return {
    id: str(raw['LoadBalancerId']),
    name: str(raw['LoadBalancerName']),
    status: str(raw['LoadBalancerStatus']),
    address: str(raw['Address']),
    addressType: str(raw['AddressType']),
    vswitchId: str(raw['VSwitchId']),
    spec: str(raw['LoadBalancerSpec']),
    chargeType: str(raw['InternetChargeType']),
    bandwidth: num(raw['Bandwidth']) ?? 0,
    tags,
  };
}

function parseHealthCheck(config: Body): HealthCheck {
  const hc: HealthCheck = {};
  const type = str(config['HealthCheckType']);
  if (type) hc.type = type;
  const fields = [
    ['connectPort', 'HealthCheckConnectPort'],
    ['connectTimeout', 'HealthCheckConnectTimeout'],
    ['healthyThreshold', 'HealthyThreshold'],
    ['unhealthyThreshold', 'UnhealthyThreshold'],
    ['interval', 'HealthCheckInterval'],
  ] as const;
  for (const [key, name] of fields) {
    const value = num(config[name]);
    if (value !== undefined) hc[key] = value;
  }
  const uri = str(config['HealthCheckURI']);
  if (uri) hc.uri = uri;
  const domain = str(config['HealthCheckDomain']);
  if (domain) hc.domain = domain;
  const code = str(config['HealthCheckHttpCode']);
  if (code) hc.httpCode = code;
  return hc;
}

function healthCheckParams(protocol: ListenerProtocol, hc: HealthCheck): Record<string, string> {
  const out: Record<string, string> = {};
  if (protocol === 'tcp' && hc.type) out['HealthCheckType'] = hc.type;
  if (hc.connectPort !== undefined) out['HealthCheckConnectPort'] = String(hc.connectPort);
  if (hc.connectTimeout !== undefined) out['HealthCheckConnectTimeout'] = String(hc.connectTimeout);
  if (hc.healthyThreshold !== undefined) out['HealthyThreshold'] = String(hc.healthyThreshold);
  if (hc.unhealthyThreshold !== undefined) out['UnhealthyThreshold'] = String(hc.unhealthyThreshold);
  if (hc.interval !== undefined) out['HealthCheckInterval'] = String(hc.interval);
  if (protocol === 'tcp' && hc.uri) out['HealthCheckURI'] = hc.uri;
  if (protocol === 'tcp' && hc.domain) out['HealthCheckDomain'] = hc.domain;
  if (protocol === 'tcp' && hc.httpCode) out['HealthCheckHttpCode'] = hc.httpCode;
  return out;
}

function listenerParams(loadBalancerId: string, config: ListenerConfig): Record<string, string> {
  return {
    LoadBalancerId: loadBalancerId,
    ListenerPort: String(config.port),
    Bandwidth: String(config.bandwidth),
    VServerGroupId: config.vServerGroupId,
    Scheduler: config.scheduler,
    Description: config.description,
    AclStatus: config.acl ? 'on' : 'off',
    ...(config.acl ? { AclId: config.acl.id, AclType: config.acl.type } : {}),
    ...healthCheckParams(config.protocol, config.healthCheck),
  };
}

function backendsParam(servers: readonly BackendServer[]): string {
  return JSON.stringify(servers.map((s) => ({ ServerId: s.serverId, Port: String(s.port), Weight: String(s.weight), Type: 'ecs' })));
}

/** Describe pages: the API's maximum PageSize for DescribeLoadBalancers. */
const PAGE_SIZE = 100;

export class SlbClient {
  constructor(
    private readonly caller: SlbCaller,
    private readonly regionId: string,
  ) {}

  private call(action: string, params: Params, signal: AbortSignal): Promise<Body> {
    return this.caller.call(action, { RegionId: this.regionId, ...params }, signal);
  }

  /** Load balancers carrying all of `tags` (or with one of `ids`), every page. */
  async describeLoadBalancers(filter: { tags?: Tags; ids?: readonly string[] }, signal: AbortSignal): Promise<LoadBalancer[]> {
    const out: LoadBalancer[] = [];
    for (let page = 1; ; page++) {
      const body = await this.call(
        'DescribeLoadBalancers',
        {
          ...(filter.tags ? tagParams(filter.tags) : {}),
          ...(filter.ids ? { LoadBalancerId: filter.ids.join(',') } : {}),
          PageNumber: String(page),
          PageSize: String(PAGE_SIZE),
        },
        signal,
      );
      const items = arr(obj(body['LoadBalancers'])['LoadBalancer']).map(parseLoadBalancer);
      out.push(...items);
      const total = num(body['TotalCount']) ?? 0;
      if (items.length < PAGE_SIZE || out.length >= total) return out;
    }
  }

  async describeLoadBalancerAttribute(id: string, signal: AbortSignal): Promise<LoadBalancerAttribute> {
    const body = await this.call('DescribeLoadBalancerAttribute', { LoadBalancerId: id }, signal);
    return { ...parseLoadBalancer(body), deleteProtection: str(body['DeleteProtection']) === 'on' ? 'on' : 'off' };
  }

  async createLoadBalancer(input: CreateLoadBalancerInput, signal: AbortSignal): Promise<{ id: string; address: string }> {
    const body = await this.call(
      'CreateLoadBalancer',
      {
        ClientToken: input.clientToken,
        LoadBalancerName: input.name,
        AddressType: input.addressType,
        DeleteProtection: input.deleteProtection,
        ...(input.spec ? { LoadBalancerSpec: input.spec } : {}),
        ...(input.chargeType ? { InternetChargeType: input.chargeType } : {}),
        ...(input.bandwidth !== undefined ? { Bandwidth: String(input.bandwidth) } : {}),
        ...(input.vswitchId ? { VSwitchId: input.vswitchId } : {}),
        ...tagParams(input.tags),
      },
      signal,
    );
    return { id: str(body['LoadBalancerId']), address: str(body['Address']) };
  }

  async deleteLoadBalancer(id: string, signal: AbortSignal): Promise<void> {
    await this.call('DeleteLoadBalancer', { LoadBalancerId: id }, signal);
  }

  async setDeleteProtection(id: string, value: 'on' | 'off', signal: AbortSignal): Promise<void> {
    await this.call('SetLoadBalancerDeleteProtection', { LoadBalancerId: id, DeleteProtection: value }, signal);
  }

  async setLoadBalancerName(id: string, name: string, signal: AbortSignal): Promise<void> {
    await this.call('SetLoadBalancerName', { LoadBalancerId: id, LoadBalancerName: name }, signal);
  }

  async modifyInternetSpec(id: string, spec: { chargeType?: string; bandwidth?: number }, signal: AbortSignal): Promise<void> {
    await this.call(
      'ModifyLoadBalancerInternetSpec',
      { LoadBalancerId: id, ...(spec.chargeType ? { InternetChargeType: spec.chargeType } : {}), ...(spec.bandwidth !== undefined ? { Bandwidth: String(spec.bandwidth) } : {}) },
      signal,
    );
  }

  async modifyInstanceSpec(id: string, spec: string, signal: AbortSignal): Promise<void> {
    await this.call('ModifyLoadBalancerInstanceSpec', { LoadBalancerId: id, LoadBalancerSpec: spec }, signal);
  }

  async tagResources(resourceType: 'instance' | 'acl', id: string, tags: Tags, signal: AbortSignal): Promise<void> {
    await this.call('TagResources', { ResourceType: resourceType, 'ResourceId.1': id, ...tagParams(tags) }, signal);
  }

  async untagResources(resourceType: 'instance' | 'acl', id: string, keys: readonly string[], signal: AbortSignal): Promise<void> {
    const params: Record<string, string> = { ResourceType: resourceType, 'ResourceId.1': id };
    keys.forEach((key, i) => (params[`TagKey.${i + 1}`] = key));
    await this.call('UntagResources', params, signal);
  }

  /** Listeners of up to 10 load balancers in one call (the API's limit), every page. */
  async describeListeners(loadBalancerIds: readonly string[], signal: AbortSignal): Promise<Map<string, Listener[]>> {
    const out = new Map<string, Listener[]>(loadBalancerIds.map((id) => [id, []]));
    let token = '';
    do {
      const params: Record<string, string> = { MaxResults: '100', ...(token ? { NextToken: token } : {}) };
      loadBalancerIds.forEach((id, i) => (params[`LoadBalancerId.${i + 1}`] = id));
      const body = await this.call('DescribeLoadBalancerListeners', params, signal);
      for (const raw of arr(body['Listeners'])) {
        const protocol = str(raw['ListenerProtocol']).toLowerCase();
        if (protocol !== 'tcp' && protocol !== 'udp') continue;
        const config = obj(raw[protocol === 'tcp' ? 'TCPListenerConfig' : 'UDPListenerConfig']);
        const listener: Listener = {
          port: num(raw['ListenerPort']) ?? 0,
          protocol,
          status: str(raw['Status']),
          description: str(raw['Description']),
          vServerGroupId: str(raw['VServerGroupId']),
          scheduler: str(raw['Scheduler']),
          aclStatus: str(raw['AclStatus']) || 'off',
          aclId: str(raw['AclId']),
          aclType: str(raw['AclType']),
          healthCheck: parseHealthCheck(config),
        };
        out.get(str(raw['LoadBalancerId']))?.push(listener);
      }
      token = str(body['NextToken']);
    } while (token);
    return out;
  }

  async createListener(loadBalancerId: string, config: ListenerConfig, signal: AbortSignal): Promise<void> {
    const action = config.protocol === 'tcp' ? 'CreateLoadBalancerTCPListener' : 'CreateLoadBalancerUDPListener';
    await this.call(action, listenerParams(loadBalancerId, config), signal);
  }

  async setListenerAttribute(loadBalancerId: string, config: ListenerConfig, signal: AbortSignal): Promise<void> {
    const action = config.protocol === 'tcp' ? 'SetLoadBalancerTCPListenerAttribute' : 'SetLoadBalancerUDPListenerAttribute';
    const params = listenerParams(loadBalancerId, config);
    // The Set* actions take VServerGroup=on with the group id.
    await this.call(action, { ...params, VServerGroup: 'on' }, signal);
  }

  async startListener(loadBalancerId: string, port: number, protocol: ListenerProtocol, signal: AbortSignal): Promise<void> {
    await this.call('StartLoadBalancerListener', { LoadBalancerId: loadBalancerId, ListenerPort: String(port), ListenerProtocol: protocol }, signal);
  }

  async deleteListener(loadBalancerId: string, port: number, protocol: ListenerProtocol, signal: AbortSignal): Promise<void> {
    await this.call('DeleteLoadBalancerListener', { LoadBalancerId: loadBalancerId, ListenerPort: String(port), ListenerProtocol: protocol }, signal);
  }

  async describeVServerGroups(loadBalancerId: string, signal: AbortSignal): Promise<VServerGroup[]> {
    const body = await this.call('DescribeVServerGroups', { LoadBalancerId: loadBalancerId }, signal);
    return arr(obj(body['VServerGroups'])['VServerGroup']).map((g) => ({ id: str(g['VServerGroupId']), name: str(g['VServerGroupName']) }));
  }

  async describeVServerGroupBackends(groupId: string, signal: AbortSignal): Promise<BackendServer[]> {
    const body = await this.call('DescribeVServerGroupAttribute', { VServerGroupId: groupId }, signal);
    return arr(obj(body['BackendServers'])['BackendServer']).map((s) => ({ serverId: str(s['ServerId']), port: num(s['Port']) ?? 0, weight: num(s['Weight']) ?? 100 }));
  }

  async createVServerGroup(loadBalancerId: string, name: string, servers: readonly BackendServer[], signal: AbortSignal): Promise<string> {
    const body = await this.call(
      'CreateVServerGroup',
      { LoadBalancerId: loadBalancerId, VServerGroupName: name, ...(servers.length > 0 ? { BackendServers: backendsParam(servers) } : {}) },
      signal,
    );
    return str(body['VServerGroupId']);
  }

  async deleteVServerGroup(groupId: string, signal: AbortSignal): Promise<void> {
    await this.call('DeleteVServerGroup', { VServerGroupId: groupId }, signal);
  }

  async addBackends(groupId: string, servers: readonly BackendServer[], signal: AbortSignal): Promise<void> {
    await this.call('AddVServerGroupBackendServers', { VServerGroupId: groupId, BackendServers: backendsParam(servers) }, signal);
  }

  async removeBackends(groupId: string, servers: readonly BackendServer[], signal: AbortSignal): Promise<void> {
    await this.call('RemoveVServerGroupBackendServers', { VServerGroupId: groupId, BackendServers: backendsParam(servers) }, signal);
  }

  async describeAcls(name: string, signal: AbortSignal): Promise<Acl[]> {
    const body = await this.call('DescribeAccessControlLists', { AclName: name }, signal);
    return arr(obj(body['Acls'])['Acl']).map((a) => ({ id: str(a['AclId']), name: str(a['AclName']) }));
  }

  async describeAclEntries(aclId: string, signal: AbortSignal): Promise<string[]> {
    const body = await this.call('DescribeAccessControlListAttribute', { AclId: aclId }, signal);
    return arr(obj(body['AclEntrys'])['AclEntry']).map((e) => str(e['AclEntryIP']));
  }

  async createAcl(name: string, tags: Tags, signal: AbortSignal): Promise<string> {
    const body = await this.call('CreateAccessControlList', { AclName: name, AddressIPVersion: 'ipv4', ...tagParams(tags) }, signal);
    return str(body['AclId']);
  }

  async deleteAcl(aclId: string, signal: AbortSignal): Promise<void> {
    await this.call('DeleteAccessControlList', { AclId: aclId }, signal);
  }

  async addAclEntries(aclId: string, cidrs: readonly string[], signal: AbortSignal): Promise<void> {
    await this.call('AddAccessControlListEntry', { AclId: aclId, AclEntrys: JSON.stringify(cidrs.map((entry) => ({ entry, comment: 'portico' }))) }, signal);
  }

  async removeAclEntries(aclId: string, cidrs: readonly string[], signal: AbortSignal): Promise<void> {
    await this.call('RemoveAccessControlListEntry', { AclId: aclId, AclEntrys: JSON.stringify(cidrs.map((entry) => ({ entry }))) }, signal);
  }
}
