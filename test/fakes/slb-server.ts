/**
 * A stateful fake of the Alibaba Cloud SLB (CLB) RPC API, version 2014-05-15, on loopback.
 *
 * No emulator exists for SLB. This server checks what the real endpoint checks and the provider
 * relies on: the ACS3-HMAC-SHA256 signature (recomputed from the raw request, as described in
 * "Request syntax and signature method V3",
 * https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature),
 * the action and version headers, a unique signature nonce, and the required parameters of each
 * action. It keeps load balancers, listeners (created stopped), VServer groups and their
 * backends, tags, access control lists, delete protection and ClientToken idempotency, and
 * answers with the response and error shapes of the API reference
 * (https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/, one page
 * per action, cited below as `ref: <action>`).
 *
 * Faults for tests: `failNext(action, fault)` answers the next call(s) of an action with an
 * error; `holdCreate` keeps CreateLoadBalancer in flight so a concurrent call with the same
 * ClientToken sees LX_REQUEST_TOKEN_CONFLICT.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAKE_ACCESS_KEY_ID = 'LTAI-portico-fake';
export const FAKE_ACCESS_KEY_SECRET = 'portico-fake-secret';
const VERSION = '2014-05-15';

type P = Record<string, string>;
type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeBackend {
  ServerId: string;
  Port: number;
  Weight: number;
  Type: string;
  Description: string;
}

export interface FakeListener {
  port: number;
  protocol: 'tcp' | 'udp';
  status: 'stopped' | 'running';
  params: P;
}

export interface FakeLoadBalancer {
  id: string;
  name: string;
  address: string;
  addressType: string;
  vswitchId: string;
  vpcId: string;
  spec: string;
  chargeType: string;
  bandwidth: number;
  deleteProtection: 'on' | 'off';
  tags: Map<string, string>;
  listeners: Map<string, FakeListener>;
  createTime: string;
}

export interface FakeGroup {
  id: string;
  loadBalancerId: string;
  name: string;
  backends: FakeBackend[];
}

export interface FakeAcl {
  id: string;
  name: string;
  entries: { entry: string; comment: string }[];
  tags: Map<string, string>;
}

export interface Fault {
  status?: number;
  code?: string;
  /** Answer only after this long (a slow or stuck endpoint), then normally. */
  hangMs?: number;
  message?: string;
  headers?: Record<string, string>;
  /** How many calls it answers (default 1). */
  times?: number;
}

export interface RecordedCall {
  action: string;
  params: P;
}

/** Actions that change state; everything else the provider calls is Describe*. */
export const MUTATING_ACTIONS = new Set([
  'CreateLoadBalancer', 'DeleteLoadBalancer', 'SetLoadBalancerDeleteProtection', 'SetLoadBalancerName', 'ModifyLoadBalancerInternetSpec',
  'ModifyLoadBalancerInstanceSpec', 'TagResources', 'UntagResources', 'CreateLoadBalancerTCPListener', 'CreateLoadBalancerUDPListener',
  'SetLoadBalancerTCPListenerAttribute', 'SetLoadBalancerUDPListenerAttribute', 'StartLoadBalancerListener', 'DeleteLoadBalancerListener',
  'CreateVServerGroup', 'DeleteVServerGroup', 'AddVServerGroupBackendServers', 'RemoveVServerGroupBackendServers',
  'CreateAccessControlList', 'DeleteAccessControlList', 'AddAccessControlListEntry', 'RemoveAccessControlListEntry',
]);

function encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function requestId(): string {
  const hex = randomBytes(16).toString('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function required(params: P, ...names: string[]): void {
  for (const name of names) {
    if (params[name] === undefined || params[name] === '') throw new ApiError(400, 'MissingParameter', `The input parameter "${name}" that is mandatory for processing this request is not supplied.`);
  }
}

function intParam(params: P, name: string, min: number, max: number): number {
  const value = Number(params[name]);
  if (!Number.isInteger(value) || value < min || value > max) throw new ApiError(400, 'InvalidParameter', `The specified parameter "${name}" is not valid.`);
  return value;
}

/** `Prefix.N.Key`/`Prefix.N.Value` -> map. */
function indexedTags(params: P, prefix = 'Tag'): Map<string, string> {
  const tags = new Map<string, string>();
  for (let i = 1; params[`${prefix}.${i}.Key`] !== undefined; i++) tags.set(params[`${prefix}.${i}.Key`] ?? '', params[`${prefix}.${i}.Value`] ?? '');
  if (tags.size > 20) throw new ApiError(400, 'InvalidParameter', 'The number of tags exceeds 20.');
  return tags;
}

function indexed(params: P, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; params[`${prefix}.${i}`] !== undefined; i++) out.push(params[`${prefix}.${i}`] ?? '');
  return out;
}

function tagList(tags: Map<string, string>): Json {
  return { Tag: [...tags].map(([TagKey, TagValue]) => ({ TagKey, TagValue })) };
}

export class FakeSlbServer {
  readonly loadBalancers = new Map<string, FakeLoadBalancer>();
  readonly groups = new Map<string, FakeGroup>();
  readonly acls = new Map<string, FakeAcl>();
  readonly calls: RecordedCall[] = [];
  readonly regionId: string;
  private readonly tokens = new Map<string, { fingerprint: string; loadBalancerId: string }>();
  private readonly inFlightTokens = new Set<string>();
  private readonly nonces = new Set<string>();
  private readonly faults = new Map<string, Fault[]>();
  private holdCreateUntil: Promise<void> | undefined;
  private server: Server | undefined;
  private seq = 0;

  constructor(options: { regionId?: string } = {}) {
    this.regionId = options.regionId ?? 'cn-hangzhou';
  }

  /** Starts listening on 127.0.0.1; returns `host:port` for the SDK's endpoint. */
  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ Code: 'InternalError', Message: String(error), RequestId: requestId() }));
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  failNext(action: string, fault: Fault): void {
    const list = this.faults.get(action) ?? [];
    list.push({ ...fault });
    this.faults.set(action, list);
  }

  /** CreateLoadBalancer calls wait for `until` before answering. */
  holdCreate(until: Promise<void>): void {
    this.holdCreateUntil = until;
  }

  callCount(action?: string): number {
    return action === undefined ? this.calls.length : this.calls.filter((c) => c.action === action).length;
  }

  resetCalls(): void {
    this.calls.length = 0;
  }

  /** Adds a balancer as if made by someone else (console, terraform), for reuse-by-id tests. */
  seedLoadBalancer(fields: Partial<Omit<FakeLoadBalancer, 'listeners' | 'tags'>> & { tags?: Record<string, string> } = {}): FakeLoadBalancer {
    const lb = this.newLoadBalancer({ LoadBalancerName: fields.name ?? 'seeded', AddressType: fields.addressType ?? 'internet' });
    Object.assign(lb, { ...fields, tags: new Map(Object.entries(fields.tags ?? {})) });
    return lb;
  }

  seedListener(loadBalancerId: string, port: number, protocol: 'tcp' | 'udp', params: P = {}): void {
    const lb = this.loadBalancers.get(loadBalancerId);
    if (!lb) throw new Error(`no ${loadBalancerId}`);
    lb.listeners.set(`${port}/${protocol}`, { port, protocol, status: 'running', params: { Description: 'made by hand', Scheduler: 'wrr', Bandwidth: '-1', ...params } });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://fake');
    const params: P = Object.fromEntries(url.searchParams);
    if ((req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) Object.assign(params, Object.fromEntries(new URLSearchParams(body.toString('utf8'))));
    const action = String(req.headers['x-acs-action'] ?? params['Action'] ?? '');
    const reply = (status: number, payload: Json, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', ...headers });
      res.end(JSON.stringify(payload));
    };
    try {
      this.verifySignature(req, url, body);
      if (req.headers['x-acs-version'] !== VERSION) throw new ApiError(400, 'InvalidVersion', `Specified parameter Version is not valid.`);
      this.calls.push({ action, params });
      const fault = this.takeFault(action);
      if (fault?.hangMs !== undefined) await new Promise((resolve) => setTimeout(resolve, fault.hangMs));
      else if (fault) {
        reply(fault.status ?? 400, { RequestId: requestId(), HostId: 'slb.fake', Code: fault.code ?? 'InternalError', Message: fault.message ?? fault.code }, fault.headers ?? {});
        return;
      }
      if (res.destroyed) return;
      if (params['RegionId'] !== undefined && params['RegionId'] !== this.regionId) throw new ApiError(400, 'InvalidRegionId', 'The specified RegionId does not exist.');
      const result = await this.dispatch(action, params);
      reply(200, { RequestId: requestId(), ...result });
    } catch (error) {
      if (error instanceof ApiError) reply(error.status, { RequestId: requestId(), HostId: 'slb.fake', Code: error.code, Message: error.message, Recommend: `https://api.aliyun.com/troubleshoot?q=${error.code}` });
      else throw error;
    }
  }

  private takeFault(action: string): Fault | undefined {
    const list = this.faults.get(action);
    const fault = list?.[0];
    if (!list || !fault) return undefined;
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) list.shift();
    return fault;
  }

  /** ACS3-HMAC-SHA256, recomputed from what arrived on the wire. */
  private verifySignature(req: IncomingMessage, url: URL, body: Buffer): void {
    const auth = req.headers['authorization'] ?? '';
    const match = /^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)$/.exec(auth);
    if (!match) throw new ApiError(400, 'IncompleteSignature', 'The request signature does not conform to Aliyun standards.');
    const [, accessKeyId = '', signedHeaderList = '', signature = ''] = match;
    if (accessKeyId !== FAKE_ACCESS_KEY_ID) throw new ApiError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    const signed = signedHeaderList.split(';');
    for (const name of Object.keys(req.headers)) {
      if ((name.startsWith('x-acs-') || name === 'host' || name === 'content-type') && !signed.includes(name)) throw new ApiError(400, 'IncompleteSignature', `The header ${name} is not signed.`);
    }
    const payloadHash = sha256Hex(body);
    if (req.headers['x-acs-content-sha256'] !== payloadHash) throw new ApiError(400, 'SignatureDoesNotMatch', 'The request body hash does not match x-acs-content-sha256.');
    const date = Date.parse(String(req.headers['x-acs-date'] ?? ''));
    if (!Number.isFinite(date) || Math.abs(Date.now() - date) > 15 * 60_000) throw new ApiError(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
    const nonce = String(req.headers['x-acs-signature-nonce'] ?? '');
    if (nonce === '' || this.nonces.has(nonce)) throw new ApiError(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
    this.nonces.add(nonce);
    const query = [...url.searchParams.keys()].sort().map((key) => `${encode(key)}=${encode(url.searchParams.get(key) ?? '')}`);
    const headers = signed.map((name) => `${name}:${String(req.headers[name] ?? '').trim()}\n`).join('');
    const canonical = [req.method, url.pathname, query.join('&'), headers, signed.join(';'), payloadHash].join('\n');
    const stringToSign = `ACS3-HMAC-SHA256\n${sha256Hex(canonical)}`;
    const expected = createHmac('sha256', FAKE_ACCESS_KEY_SECRET).update(stringToSign).digest('hex');
    if (expected !== signature) throw new ApiError(400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.');
  }

  private nextId(prefix: string): string {
    this.seq++;
    return `${prefix}-fake${this.seq.toString(36).padStart(12, '0')}`;
  }

  private lb(params: P): FakeLoadBalancer {
    required(params, 'LoadBalancerId');
    const lb = this.loadBalancers.get(params['LoadBalancerId'] ?? '');
    if (!lb) throw new ApiError(400, 'InvalidLoadBalancerId.NotFound', 'The specified LoadBalancerId does not exist.');
    return lb;
  }

  private group(params: P): FakeGroup {
    required(params, 'VServerGroupId');
    const group = this.groups.get(params['VServerGroupId'] ?? '');
    if (!group) throw new ApiError(400, 'InvalidParameter.VServerGroupId', 'The specified VServerGroupId does not exist.');
    return group;
  }

  private acl(params: P): FakeAcl {
    required(params, 'AclId');
    const acl = this.acls.get(params['AclId'] ?? '');
    if (!acl) throw new ApiError(400, 'AclNotExist', 'The specified AclId does not exist.');
    return acl;
  }

  private newLoadBalancer(params: P): FakeLoadBalancer {
    const id = this.nextId('lb');
    const n = this.seq;
    const intranet = params['AddressType'] === 'intranet';
    const lb: FakeLoadBalancer = {
      id,
      name: params['LoadBalancerName'] ?? `auto_named_slb_${n}`,
      address: intranet ? `192.0.2.${n % 250 + 1}` : `203.0.113.${n % 250 + 1}`,
      addressType: params['AddressType'] ?? 'internet',
      vswitchId: params['VSwitchId'] ?? '',
      vpcId: params['VSwitchId'] ? 'vpc-fake' : '',
      spec: params['LoadBalancerSpec'] ?? '',
      chargeType: params['InternetChargeType'] ?? 'paybytraffic',
      bandwidth: Number(params['Bandwidth'] ?? 5120),
      deleteProtection: params['DeleteProtection'] === 'on' ? 'on' : 'off',
      tags: indexedTags(params),
      listeners: new Map(),
      createTime: new Date().toISOString(),
    };
    this.loadBalancers.set(id, lb);
    return lb;
  }

  private describeLb(lb: FakeLoadBalancer): Json {
    return {
      LoadBalancerId: lb.id,
      LoadBalancerName: lb.name,
      LoadBalancerStatus: 'active',
      Address: lb.address,
      AddressType: lb.addressType,
      AddressIPVersion: 'ipv4',
      RegionId: this.regionId,
      VSwitchId: lb.vswitchId,
      VpcId: lb.vpcId,
      NetworkType: lb.vpcId ? 'vpc' : 'classic',
      LoadBalancerSpec: lb.spec,
      InternetChargeType: lb.chargeType,
      Bandwidth: lb.bandwidth,
      CreateTime: lb.createTime,
      PayType: 'PayOnDemand',
      Tags: tagList(lb.tags),
    };
  }

  private listenerJson(lb: FakeLoadBalancer, l: FakeListener): Json {
    const p = l.params;
    const hc: Json = { HealthCheck: 'on' };
    for (const name of ['HealthCheckType', 'HealthCheckConnectPort', 'HealthyThreshold', 'UnhealthyThreshold', 'HealthCheckConnectTimeout', 'HealthCheckInterval', 'HealthCheckURI', 'HealthCheckDomain', 'HealthCheckHttpCode']) {
      const value = p[name];
      if (value !== undefined) hc[name] = /^\d+$/.test(value) ? Number(value) : value;
    }
    if (l.protocol === 'tcp') hc['HealthCheckType'] ??= 'tcp';
    return {
      LoadBalancerId: lb.id,
      ListenerPort: l.port,
      ListenerProtocol: l.protocol,
      Status: l.status,
      Description: p['Description'] ?? '',
      VServerGroupId: p['VServerGroupId'] ?? '',
      Scheduler: p['Scheduler'] ?? 'wrr',
      Bandwidth: Number(p['Bandwidth'] ?? -1),
      AclStatus: p['AclStatus'] ?? 'off',
      ...(p['AclId'] ? { AclId: p['AclId'], AclType: p['AclType'] ?? 'white' } : {}),
      [l.protocol === 'tcp' ? 'TCPListenerConfig' : 'UDPListenerConfig']: hc,
    };
  }

  private parseBackends(params: P): FakeBackend[] {
    let raw: unknown;
    try {
      raw = JSON.parse(params['BackendServers'] ?? '');
    } catch {
      throw new ApiError(400, 'InvalidParameter', 'The specified parameter "BackendServers" is not valid.');
    }
    if (!Array.isArray(raw)) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "BackendServers" is not valid.');
    // ref: AddVServerGroupBackendServers - "You can add at most 20 backend servers in each call."
    if (raw.length > 20) throw new ApiError(400, 'InvalidParameter', 'BackendServers exceeds the limit of 20.');
    return raw.map((item: unknown) => {
      const s = item as Record<string, unknown>;
      const port = Number(s['Port']);
      if (typeof s['ServerId'] !== 'string' || !/^i-/.test(s['ServerId']) || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new ApiError(400, 'InvalidParameter', 'The specified parameter "BackendServers" is not valid.');
      }
      return { ServerId: s['ServerId'], Port: port, Weight: Number(s['Weight'] ?? 100), Type: typeof s['Type'] === 'string' ? s['Type'] : 'ecs', Description: typeof s['Description'] === 'string' ? s['Description'] : '' };
    });
  }

  private checkListenerParams(params: P, protocol: 'tcp' | 'udp', lb: FakeLoadBalancer, creating: boolean): void {
    required(params, 'LoadBalancerId', 'ListenerPort');
    if (creating) required(params, 'Bandwidth');
    intParam(params, 'ListenerPort', 1, 65535);
    if (params['Bandwidth'] !== undefined && params['Bandwidth'] !== '-1') intParam(params, 'Bandwidth', 1, 5120);
    if (params['Scheduler'] !== undefined && !['wrr', 'rr', 'wlc', 'sch', 'tch', 'qch'].includes(params['Scheduler'])) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "Scheduler" is not valid.');
    if (params['Description'] !== undefined && params['Description'].length > 80) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "Description" is not valid.');
    const groupId = params['VServerGroupId'];
    if (groupId) {
      const group = this.groups.get(groupId);
      if (group?.loadBalancerId !== lb.id) throw new ApiError(400, 'InvalidParameter.VServerGroupId', 'The specified VServerGroupId does not exist.');
    }
    if (params['AclStatus'] === 'on') {
      required(params, 'AclId', 'AclType');
      if (!this.acls.has(params['AclId'] ?? '')) throw new ApiError(400, 'AclNotExist', 'The specified AclId does not exist.');
    }
    if (protocol === 'tcp' && params['HealthCheckType'] !== undefined && !['tcp', 'http'].includes(params['HealthCheckType'])) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "HealthCheckType" is not valid.');
    for (const [name, min, max] of [['HealthyThreshold', 2, 10], ['UnhealthyThreshold', 2, 10], ['HealthCheckConnectTimeout', 1, 300], ['HealthCheckInterval', 1, 50], ['HealthCheckConnectPort', 1, 65535]] as const) {
      if (params[name] !== undefined) intParam(params, name, min, max);
    }
  }

  private listenerOf(params: P): { lb: FakeLoadBalancer; listener: FakeListener } {
    const lb = this.lb(params);
    required(params, 'ListenerPort');
    const port = Number(params['ListenerPort']);
    const protocol = params['ListenerProtocol']?.toLowerCase();
    const matches = [...lb.listeners.values()].filter((l) => l.port === port && (protocol === undefined || l.protocol === protocol));
    const listener = matches[0];
    if (!listener) throw new ApiError(400, 'InvalidParameter', 'The specified resource does not exist.');
    if (matches.length > 1) throw new ApiError(400, 'MissingParameter', 'The input parameter "ListenerProtocol" that is mandatory for processing this request is not supplied.');
    return { lb, listener };
  }

  private taggable(params: P): Map<string, string>[] {
    required(params, 'ResourceType', 'ResourceId.1');
    const type = params['ResourceType'];
    return indexed(params, 'ResourceId').map((id) => {
      if (type === 'instance') {
        const lb = this.loadBalancers.get(id);
        if (!lb) throw new ApiError(400, 'InvalidLoadBalancerId.NotFound', 'The specified LoadBalancerId does not exist.');
        return lb.tags;
      }
      if (type === 'acl') {
        const acl = this.acls.get(id);
        if (!acl) throw new ApiError(400, 'AclNotExist', 'The specified AclId does not exist.');
        return acl.tags;
      }
      throw new ApiError(400, 'InvalidParameter', 'The specified parameter "ResourceType" is not valid.');
    });
  }

  private async dispatch(action: string, p: P): Promise<Json> {
    switch (action) {
      // ref: CreateLoadBalancer
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-createloadbalancer
      case 'CreateLoadBalancer': {
        required(p, 'RegionId');
        if (p['AddressType'] !== undefined && !['internet', 'intranet'].includes(p['AddressType'])) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "AddressType" is not valid.');
        if (p['InternetChargeType'] !== undefined && !['paybytraffic', 'paybybandwidth'].includes(p['InternetChargeType'])) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "InternetChargeType" is not valid.');
        if (p['Bandwidth'] !== undefined) intParam(p, 'Bandwidth', 1, 5120);
        if (p['VSwitchId'] !== undefined && !/^vsw-/.test(p['VSwitchId'])) throw new ApiError(400, 'InvalidVSwitchId.NotFound', 'The specified VSwitchId does not exist.');
        const token = p['ClientToken'];
        const { ClientToken: _token, RegionId: _region, ...rest } = p;
        const fingerprint = JSON.stringify(Object.entries(rest).sort());
        if (token !== undefined) {
          if (this.inFlightTokens.has(token)) throw new ApiError(400, 'LX_REQUEST_TOKEN_CONFLICT', 'Request token conflict: a request with this ClientToken is being processed.');
          const seen = this.tokens.get(token);
          if (seen && seen.fingerprint !== fingerprint) throw new ApiError(400, 'IdempotentParameterMismatch', 'The request uses the same client token as a previous, but non-identical request.');
          const previous = seen ? this.loadBalancers.get(seen.loadBalancerId) : undefined;
          if (previous) return this.createAnswer(previous);
          this.inFlightTokens.add(token);
        }
        try {
          if (this.holdCreateUntil) await this.holdCreateUntil;
          const lb = this.newLoadBalancer(p);
          if (token !== undefined) this.tokens.set(token, { fingerprint, loadBalancerId: lb.id });
          return this.createAnswer(lb);
        } finally {
          if (token !== undefined) this.inFlightTokens.delete(token);
        }
      }
      // ref: DescribeLoadBalancers (Tag.N.Key / Tag.N.Value filter; LoadBalancerId comma-separated)
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describeloadbalancers
      case 'DescribeLoadBalancers': {
        required(p, 'RegionId');
        const pageSize = p['PageSize'] ? intParam(p, 'PageSize', 1, 100) : 10;
        const pageNumber = p['PageNumber'] ? intParam(p, 'PageNumber', 1, 1_000_000) : 1;
        const ids = p['LoadBalancerId'] ? new Set(p['LoadBalancerId'].split(',')) : undefined;
        if (ids && ids.size > 20) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "LoadBalancerId" is not valid.');
        const tags = indexedTags(p);
        const all = [...this.loadBalancers.values()].filter((lb) => (!ids || ids.has(lb.id)) && [...tags].every(([k, v]) => lb.tags.get(k) === v));
        const page = all.slice((pageNumber - 1) * pageSize, pageNumber * pageSize);
        return { TotalCount: all.length, PageNumber: pageNumber, PageSize: pageSize, LoadBalancers: { LoadBalancer: page.map((lb) => this.describeLb(lb)) } };
      }
      // ref: DescribeLoadBalancerAttribute
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describeloadbalancerattribute
      case 'DescribeLoadBalancerAttribute': {
        const lb = this.lb(p);
        return {
          ...this.describeLb(lb),
          DeleteProtection: lb.deleteProtection,
          ListenerPorts: { ListenerPort: [...lb.listeners.values()].map((l) => l.port) },
          ListenerPortsAndProtocol: { ListenerPortAndProtocol: [...lb.listeners.values()].map((l) => ({ ListenerPort: l.port, ListenerProtocol: l.protocol, Description: l.params['Description'] ?? '' })) },
        };
      }
      // ref: DeleteLoadBalancer
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-deleteloadbalancer
      case 'DeleteLoadBalancer': {
        const lb = this.lb(p);
        // The code of the real "delete protection is on" answer is not given by the reference; this one is ours.
        if (lb.deleteProtection === 'on') throw new ApiError(400, 'OperationDenied.DeleteProtection', 'The load balancer has delete protection enabled.');
        this.loadBalancers.delete(lb.id);
        for (const [id, group] of this.groups) if (group.loadBalancerId === lb.id) this.groups.delete(id);
        return {};
      }
      // ref: SetLoadBalancerDeleteProtection
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-setloadbalancerdeleteprotection
      case 'SetLoadBalancerDeleteProtection': {
        required(p, 'DeleteProtection');
        if (!['on', 'off'].includes(p['DeleteProtection'] ?? '')) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "DeleteProtection" is not valid.');
        this.lb(p).deleteProtection = p['DeleteProtection'] === 'on' ? 'on' : 'off';
        return {};
      }
      // ref: SetLoadBalancerName
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-setloadbalancername
      case 'SetLoadBalancerName': {
        required(p, 'LoadBalancerName');
        this.lb(p).name = p['LoadBalancerName'] ?? '';
        return {};
      }
      // ref: ModifyLoadBalancerInternetSpec
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-modifyloadbalancerinternetspec
      case 'ModifyLoadBalancerInternetSpec': {
        const lb = this.lb(p);
        if (p['InternetChargeType']) lb.chargeType = p['InternetChargeType'];
        if (p['Bandwidth']) lb.bandwidth = intParam(p, 'Bandwidth', 1, 5120);
        return {};
      }
      // ref: ModifyLoadBalancerInstanceSpec
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-modifyloadbalancerinstancespec
      case 'ModifyLoadBalancerInstanceSpec': {
        required(p, 'LoadBalancerSpec');
        this.lb(p).spec = p['LoadBalancerSpec'] ?? '';
        return { OrderId: 0 };
      }
      // ref: TagResources / UntagResources
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-tagresources
      case 'TagResources': {
        const tags = indexedTags(p);
        if (tags.size === 0) throw new ApiError(400, 'MissingParameter', 'The input parameter "Tag.1.Key" that is mandatory for processing this request is not supplied.');
        for (const target of this.taggable(p)) {
          for (const [k, v] of tags) target.set(k, v);
          if (target.size > 20) throw new ApiError(400, 'InvalidParameter.TagNumberExceeded', 'The number of tags exceeds 20.');
        }
        return {};
      }
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-untagresources
      case 'UntagResources': {
        const keys = indexed(p, 'TagKey');
        for (const target of this.taggable(p)) {
          if (p['All'] === 'true') target.clear();
          for (const key of keys) target.delete(key);
        }
        return {};
      }
      // ref: CreateLoadBalancerTCPListener / CreateLoadBalancerUDPListener ("the listener is in the stopped state after it is created")
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-createloadbalancertcplistener
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-createloadbalancerudplistener
      case 'CreateLoadBalancerTCPListener':
      case 'CreateLoadBalancerUDPListener': {
        const protocol = action === 'CreateLoadBalancerTCPListener' ? 'tcp' : 'udp';
        const lb = this.lb(p);
        this.checkListenerParams(p, protocol, lb, true);
        const port = Number(p['ListenerPort']);
        if ([...lb.listeners.values()].some((l) => l.port === port)) throw new ApiError(400, 'ListenerAlreadyExists', 'The specified listener already exists.');
        const { RegionId: _r, LoadBalancerId: _l, ListenerPort: _p, ...rest } = p;
        lb.listeners.set(`${port}/${protocol}`, { port, protocol, status: 'stopped', params: rest });
        return {};
      }
      // ref: SetLoadBalancerTCPListenerAttribute / SetLoadBalancerUDPListenerAttribute
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-setloadbalancertcplistenerattribute
      case 'SetLoadBalancerTCPListenerAttribute':
      case 'SetLoadBalancerUDPListenerAttribute': {
        const protocol = action === 'SetLoadBalancerTCPListenerAttribute' ? 'tcp' : 'udp';
        const { lb, listener } = this.listenerOf({ ...p, ListenerProtocol: protocol });
        this.checkListenerParams(p, protocol, lb, false);
        if (p['VServerGroup'] === 'on') required(p, 'VServerGroupId');
        const { RegionId: _r, LoadBalancerId: _l, ListenerPort: _p, VServerGroup: _v, ...rest } = p;
        listener.params = { ...listener.params, ...rest };
        if (rest['AclStatus'] === 'off') {
          delete listener.params['AclId'];
          delete listener.params['AclType'];
        }
        return {};
      }
      // ref: StartLoadBalancerListener
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-startloadbalancerlistener
      case 'StartLoadBalancerListener': {
        this.listenerOf(p).listener.status = 'running';
        return {};
      }
      // ref: DeleteLoadBalancerListener
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-deleteloadbalancerlistener
      case 'DeleteLoadBalancerListener': {
        const { lb, listener } = this.listenerOf(p);
        lb.listeners.delete(`${listener.port}/${listener.protocol}`);
        return {};
      }
      // ref: DescribeLoadBalancerListeners (LoadBalancerId.N, at most 10; MaxResults up to 100; NextToken)
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describeloadbalancerlisteners
      case 'DescribeLoadBalancerListeners': {
        required(p, 'RegionId');
        const ids = indexed(p, 'LoadBalancerId');
        if (ids.length > 10) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "LoadBalancerId" is not valid.');
        const max = p['MaxResults'] ? intParam(p, 'MaxResults', 1, 100) : 20;
        const start = p['NextToken'] ? Number(p['NextToken']) : 0;
        const all = [...this.loadBalancers.values()]
          .filter((lb) => ids.length === 0 || ids.includes(lb.id))
          .flatMap((lb) => [...lb.listeners.values()].map((l) => this.listenerJson(lb, l)));
        const page = all.slice(start, start + max);
        return { Listeners: page, TotalCount: all.length, MaxResults: max, ...(start + max < all.length ? { NextToken: String(start + max) } : {}) };
      }
      // ref: CreateVServerGroup
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-createvservergroup
      case 'CreateVServerGroup': {
        const lb = this.lb(p);
        required(p, 'VServerGroupName');
        const backends = p['BackendServers'] ? this.parseBackends(p) : [];
        const group: FakeGroup = { id: this.nextId('rsp'), loadBalancerId: lb.id, name: p['VServerGroupName'] ?? '', backends };
        this.groups.set(group.id, group);
        return { VServerGroupId: group.id, BackendServers: { BackendServer: backends } };
      }
      // ref: DeleteVServerGroup ("a group used by a listener cannot be deleted")
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-deletevservergroup
      case 'DeleteVServerGroup': {
        const group = this.group(p);
        const lb = this.loadBalancers.get(group.loadBalancerId);
        if (lb && [...lb.listeners.values()].some((l) => l.params['VServerGroupId'] === group.id)) throw new ApiError(400, 'RspoolVipExist', 'There are vips associating with this vServer group.');
        this.groups.delete(group.id);
        return {};
      }
      // ref: DescribeVServerGroups
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describevservergroups
      case 'DescribeVServerGroups': {
        const lb = this.lb(p);
        const groups = [...this.groups.values()].filter((g) => g.loadBalancerId === lb.id);
        return { VServerGroups: { VServerGroup: groups.map((g) => ({ VServerGroupId: g.id, VServerGroupName: g.name })) } };
      }
      // ref: DescribeVServerGroupAttribute
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describevservergroupattribute
      case 'DescribeVServerGroupAttribute': {
        const group = this.group(p);
        return { VServerGroupId: group.id, VServerGroupName: group.name, LoadBalancerId: group.loadBalancerId, BackendServers: { BackendServer: group.backends } };
      }
      // ref: AddVServerGroupBackendServers / RemoveVServerGroupBackendServers (at most 20 per call)
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-addvservergroupbackendservers
      case 'AddVServerGroupBackendServers': {
        const group = this.group(p);
        required(p, 'BackendServers');
        for (const backend of this.parseBackends(p)) {
          if (!group.backends.some((b) => b.ServerId === backend.ServerId && b.Port === backend.Port)) group.backends.push(backend);
        }
        return { VServerGroupId: group.id, BackendServers: { BackendServer: group.backends } };
      }
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-removevservergroupbackendservers
      case 'RemoveVServerGroupBackendServers': {
        const group = this.group(p);
        required(p, 'BackendServers');
        const gone = this.parseBackends(p);
        group.backends = group.backends.filter((b) => !gone.some((g) => g.ServerId === b.ServerId && g.Port === b.Port));
        return { VServerGroupId: group.id, BackendServers: { BackendServer: group.backends } };
      }
      // ref: CreateAccessControlList
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-createaccesscontrollist
      case 'CreateAccessControlList': {
        required(p, 'RegionId', 'AclName');
        if ([...this.acls.values()].some((a) => a.name === p['AclName'])) throw new ApiError(400, 'AclNameExist', 'The specified AclName already exists.');
        const acl: FakeAcl = { id: this.nextId('acl'), name: p['AclName'] ?? '', entries: [], tags: indexedTags(p) };
        this.acls.set(acl.id, acl);
        return { AclId: acl.id };
      }
      // ref: DeleteAccessControlList ("an ACL in use by a listener cannot be deleted")
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-deleteaccesscontrollist
      case 'DeleteAccessControlList': {
        const acl = this.acl(p);
        const inUse = [...this.loadBalancers.values()].some((lb) => [...lb.listeners.values()].some((l) => l.params['AclId'] === acl.id));
        if (inUse) throw new ApiError(400, 'AclInUsed', 'The specified ACL is in use.');
        this.acls.delete(acl.id);
        return {};
      }
      // ref: DescribeAccessControlLists
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describeaccesscontrollists
      case 'DescribeAccessControlLists': {
        required(p, 'RegionId');
        const acls = [...this.acls.values()].filter((a) => !p['AclName'] || a.name === p['AclName']);
        return { Acls: { Acl: acls.map((a) => ({ AclId: a.id, AclName: a.name, AddressIPVersion: 'ipv4', Tags: tagList(a.tags) })) }, TotalCount: acls.length };
      }
      // ref: DescribeAccessControlListAttribute
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-describeaccesscontrollistattribute
      case 'DescribeAccessControlListAttribute': {
        const acl = this.acl(p);
        return { AclId: acl.id, AclName: acl.name, AclEntrys: { AclEntry: acl.entries.map((e) => ({ AclEntryIP: e.entry, AclEntryComment: e.comment })) } };
      }
      // ref: AddAccessControlListEntry / RemoveAccessControlListEntry (AclEntrys: JSON, at most 50 per call)
      // https://www.alibabacloud.com/help/en/slb/classic-load-balancer/developer-reference/api-slb-2014-05-15-addaccesscontrollistentry
      case 'AddAccessControlListEntry':
      case 'RemoveAccessControlListEntry': {
        const acl = this.acl(p);
        required(p, 'AclEntrys');
        let entries: { entry?: unknown; comment?: unknown }[];
        try {
          entries = JSON.parse(p['AclEntrys'] ?? '') as { entry?: unknown; comment?: unknown }[];
        } catch {
          throw new ApiError(400, 'InvalidParameter', 'The specified parameter "AclEntrys" is not valid.');
        }
        if (!Array.isArray(entries) || entries.length > 50) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "AclEntrys" is not valid.');
        for (const e of entries) {
          const entry = typeof e.entry === 'string' ? e.entry : '';
          if (!/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(entry)) throw new ApiError(400, 'InvalidParameter', 'The specified parameter "AclEntrys" is not valid.');
          if (action === 'AddAccessControlListEntry') {
            if (acl.entries.some((x) => x.entry === entry)) throw new ApiError(400, 'AclEntryExist', 'The specified AclEntry already exists.');
            acl.entries.push({ entry, comment: typeof e.comment === 'string' ? e.comment : '' });
          } else {
            acl.entries = acl.entries.filter((x) => x.entry !== entry);
          }
        }
        return {};
      }
      default:
        throw new ApiError(400, 'InvalidAction.NotFound', `Specified api is not found, please check your url and method.`);
    }
  }

  private createAnswer(lb: FakeLoadBalancer): Json {
    return {
      LoadBalancerId: lb.id,
      LoadBalancerName: lb.name,
      Address: lb.address,
      AddressIPVersion: 'ipv4',
      NetworkType: lb.vpcId ? 'vpc' : 'classic',
      VpcId: lb.vpcId,
      VSwitchId: lb.vswitchId,
      OrderId: 0,
    };
  }
}
