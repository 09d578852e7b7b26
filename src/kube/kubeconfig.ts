/**
 * Finds and reads a kubeconfig the way client-go does, without @kubernetes/client-node: importing
 * that library costs a process about 100 MB of RSS, more than the whole controller at rest.
 * Certificates, tokens and basic auth are handled here; a user whose credentials come from an
 * `exec` plugin or an `auth-provider` (EKS, GKE, OIDC) is handed to client-node, imported then.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AgentOptions, RequestOptions } from 'node:https';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import type { KubeConfig as ClientNodeKubeConfig } from '@kubernetes/client-node';
import type * as Yaml from 'yaml';

/** TLS settings for node:https (unset fields: Node's defaults). */
export type ClusterTls = Pick<AgentOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;

/** Where the API server is and how to authenticate to it, as of now. */
export interface ClusterAccess {
  /** Base URL, e.g. https://10.96.0.1:443. */
  server: string;
  tls: ClusterTls;
  /** Authorization, when the user authenticates with a header. */
  headers: Readonly<Record<string, string>>;
}

/** A loaded kubeconfig: the narrow view the REST client needs. */
export interface KubeConfig {
  /** The file it came from, or `in-cluster`; for messages. */
  readonly source: string;
  /** The current context's namespace, or the service account's in a cluster. */
  readonly namespace: string | undefined;
  /** Reads referenced files again on every call, so rotated tokens and certificates are used. */
  access(): Promise<ClusterAccess>;
}

/** The kubeconfig is missing, unreadable or incomplete; the message names the file and field. */
export class KubeConfigError extends Error {
  readonly source: string | undefined;
  readonly field: string | undefined;

  constructor(message: string, source?: string, field?: string) {
    super(source === undefined ? message : `kubeconfig ${source}: ${field === undefined ? '' : `${field}: `}${message}`);
    this.name = 'KubeConfigError';
    this.source = source;
    this.field = field;
  }
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Overridable for tests. */
export interface KubeConfigLocations {
  serviceAccountDir?: string;
  home?: string;
}

/**
 * An explicit path, then in-cluster (KUBERNETES_SERVICE_HOST and _PORT set and
 * a service-account token mounted), then the first path in $KUBECONFIG, then ~/.kube/config.
 */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env, where: KubeConfigLocations = {}): KubeConfig {
  if (path) return kubeConfigFromFile(path);
  const serviceAccountDir = where.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(join(serviceAccountDir, 'token'))) {
    return inClusterKubeConfig(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, serviceAccountDir);
  }
  const fromEnv = env.KUBECONFIG?.split(delimiter).find((p) => p !== '');
  if (fromEnv) return kubeConfigFromFile(fromEnv);
  const home = join(where.home ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return kubeConfigFromFile(home);
  throw new KubeConfigError('no kubeconfig: pass --kubeconfig, run in a cluster, or set $KUBECONFIG');
}

/** The service account's token (rotated by the kubelet: re-read), CA and namespace. */
export function inClusterKubeConfig(host: string, port: string, serviceAccountDir = SERVICE_ACCOUNT_DIR): KubeConfig {
  const namespace = existsSync(join(serviceAccountDir, 'namespace')) ? readFileSync(join(serviceAccountDir, 'namespace'), 'utf8').trim() : undefined;
  return fromEntries(
    'in-cluster',
    { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca: { file: join(serviceAccountDir, 'ca.crt'), field: 'ca.crt' }, insecure: false, servername: undefined },
    { tokenFile: join(serviceAccountDir, 'token'), field: 'token' },
    namespace || undefined,
  );
}

// yaml ships CommonJS for Node, so this is the very instance `import 'yaml'` gives; loaded only
// when a YAML file is read (in a cluster there is none).
const requireLazily = createRequire(import.meta.url);

export function kubeConfigFromFile(path: string): KubeConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KubeConfigError(`cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, file);
  }
  return parseKubeConfig(parseDocument(text, file), file);
}

/**
 * A kubeconfig written as JSON (kubectl and client-go read it: YAML includes JSON) is read
 * without loading the YAML parser, about 40 ms of a start. Anything else, including YAML's
 * own `{...}` flow style, goes to the YAML parser.
 */
function parseDocument(text: string, file: string): unknown {
  if (/^\s*\{/.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Not JSON after all: YAML decides, and names the problem if there is one.
    }
  }
  try {
    return (requireLazily('yaml') as typeof Yaml).parse(text);
  } catch (error) {
    throw new KubeConfigError(`not valid YAML: ${(error as Error).message.split('\n')[0] ?? ''}`, file);
  }
}

interface Material {
  /** Inline (a `*-data` field, decoded) or a file read on every access. */
  data?: Buffer;
  file?: string;
  /** The field it came from, for messages. */
  field: string;
}

interface ClusterEntry {
  server: string;
  ca: Material | undefined;
  insecure: boolean;
  servername: string | undefined;
}

interface UserEntry {
  cert?: Material;
  key?: Material;
  token?: string;
  tokenFile?: string;
  basic?: { username: string; password: string };
  /** exec or auth-provider: credentials come from client-node. */
  delegate?: boolean;
  field: string;
}

/** Fields Portico would otherwise silently ignore, changing whom it talks to or as whom. */
const UNSUPPORTED_USER_FIELDS = ['as', 'as-uid', 'as-groups', 'as-user-extra'] as const;

/** A parsed kubeconfig document (from `file`, which relative paths are resolved against). */
export function parseKubeConfig(document: unknown, file: string): KubeConfig {
  const fail = (field: string, message: string): never => {
    throw new KubeConfigError(message, file, field);
  };
  if (!isObject(document)) return fail('(top level)', 'expected a mapping');
  const base = dirname(file);
  const contextName = optionalString(document, 'current-context', 'current-context', fail);
  if (!contextName) return fail('current-context', 'not set');
  const named = (list: string, name: string, inner: string): Record<string, unknown> | undefined => {
    const entries = document[list];
    if (entries === undefined || entries === null) return undefined;
    if (!Array.isArray(entries)) return fail(list, 'expected a list');
    const entry: unknown = entries.find((e: unknown) => isObject(e) && e.name === name);
    if (entry === undefined) return undefined;
    const value = (entry as Record<string, unknown>)[inner];
    if (value === undefined || value === null) return {};
    return isObject(value) ? value : fail(`${list}[${name}].${inner}`, 'expected a mapping');
  };
  const namesIn = (list: string): string => {
    const entries = document[list];
    const names = Array.isArray(entries) ? entries.map((e: unknown) => (isObject(e) ? String(e.name) : '?')) : [];
    return names.length > 0 ? names.join(', ') : 'none';
  };
  const context = named('contexts', contextName, 'context');
  if (!context) return fail('current-context', `context "${contextName}" not found (contexts: ${namesIn('contexts')})`);
  const contextField = `contexts[${contextName}].context`;
  const clusterName = optionalString(context, 'cluster', `${contextField}.cluster`, fail);
  if (!clusterName) return fail(`${contextField}.cluster`, 'not set');
  const rawCluster = named('clusters', clusterName, 'cluster');
  if (!rawCluster) return fail(`${contextField}.cluster`, `cluster "${clusterName}" not found (clusters: ${namesIn('clusters')})`);
  const cluster = parseCluster(rawCluster, `clusters[${clusterName}].cluster`, base, fail);
  const userName = optionalString(context, 'user', `${contextField}.user`, fail);
  let user: UserEntry = { field: `${contextField}.user` };
  if (userName) {
    const rawUser = named('users', userName, 'user');
    if (!rawUser) return fail(`${contextField}.user`, `user "${userName}" not found (users: ${namesIn('users')})`);
    user = parseUser(rawUser, `users[${userName}].user`, base, fail);
  }
  const namespace = optionalString(context, 'namespace', `${contextField}.namespace`, fail);
  if (user.delegate) return delegatedKubeConfig(file, contextName, namespace || undefined);
  return fromEntries(file, cluster, user, namespace || undefined);
}

type Fail = (field: string, message: string) => never;

function parseCluster(raw: Record<string, unknown>, field: string, base: string, fail: Fail): ClusterEntry {
  const server = optionalString(raw, 'server', `${field}.server`, fail);
  if (!server) return fail(`${field}.server`, 'not set');
  let url: URL | undefined;
  try {
    url = new URL(server);
  } catch {
    // reported below
  }
  if (url?.protocol !== 'https:' && url?.protocol !== 'http:') return fail(`${field}.server`, `${server}: expected an http(s) URL`);
  if (raw['proxy-url'] !== undefined) fail(`${field}.proxy-url`, 'proxies are not supported');
  const insecure = raw['insecure-skip-tls-verify'];
  if (insecure !== undefined && typeof insecure !== 'boolean') fail(`${field}.insecure-skip-tls-verify`, 'expected true or false');
  return {
    server,
    ca: material(raw, 'certificate-authority', field, base, fail),
    insecure: insecure === true,
    servername: optionalString(raw, 'tls-server-name', `${field}.tls-server-name`, fail) || undefined,
  };
}

function parseUser(raw: Record<string, unknown>, field: string, base: string, fail: Fail): UserEntry {
  for (const key of UNSUPPORTED_USER_FIELDS) {
    if (raw[key] !== undefined) fail(`${field}.${key}`, 'impersonation is not supported');
  }
  const user: UserEntry = { field };
  if (raw.exec !== undefined || raw['auth-provider'] !== undefined) return { field, delegate: true };
  const cert = material(raw, 'client-certificate', field, base, fail);
  const key = material(raw, 'client-key', field, base, fail);
  if ((cert === undefined) !== (key === undefined)) fail(`${field}.${cert ? 'client-key' : 'client-certificate'}`, 'not set (a client certificate needs its key and the key its certificate)');
  if (cert) user.cert = cert;
  if (key) user.key = key;
  const token = optionalString(raw, 'token', `${field}.token`, fail);
  if (token) user.token = token;
  const tokenFile = optionalString(raw, 'tokenFile', `${field}.tokenFile`, fail);
  if (tokenFile) user.tokenFile = resolve(base, tokenFile);
  const username = optionalString(raw, 'username', `${field}.username`, fail);
  const password = optionalString(raw, 'password', `${field}.password`, fail);
  if (username || password) {
    if (token || tokenFile) fail(`${field}.username`, 'basic auth and a bearer token cannot both be set');
    user.basic = { username: username ?? '', password: password ?? '' };
  }
  return user;
}

/** `<name>-data` (base64; wins, as in client-go) or `<name>` (a path, relative to the kubeconfig). */
function material(raw: Record<string, unknown>, name: string, field: string, base: string, fail: Fail): Material | undefined {
  const data = optionalString(raw, `${name}-data`, `${field}.${name}-data`, fail);
  if (data) return { data: Buffer.from(data, 'base64'), field: `${field}.${name}-data` };
  const file = optionalString(raw, name, `${field}.${name}`, fail);
  return file ? { file: resolve(base, file), field: `${field}.${name}` } : undefined;
}

function fromEntries(source: string, cluster: ClusterEntry, user: UserEntry, namespace: string | undefined): KubeConfig {
  const read = (m: Material): Buffer => {
    if (m.data) return m.data;
    try {
      return readFileSync(m.file ?? '');
    } catch (error) {
      throw new KubeConfigError(`cannot read ${m.file ?? ''}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, source, m.field);
    }
  };
  const current = (): ClusterAccess => {
    const tls: ClusterTls = { rejectUnauthorized: !cluster.insecure };
    // Without verification a CA would be unused; client-go rejects the combination, we skip it.
    if (cluster.ca && !cluster.insecure) tls.ca = read(cluster.ca);
    if (cluster.servername) tls.servername = cluster.servername;
    if (user.cert && user.key) {
      tls.cert = read(user.cert);
      tls.key = read(user.key);
    }
    const headers: Record<string, string> = {};
    const token = bearerToken(user, source);
    if (token) headers.authorization = `Bearer ${token}`;
    else if (user.basic) headers.authorization = `Basic ${Buffer.from(`${user.basic.username}:${user.basic.password}`).toString('base64')}`;
    return { server: cluster.server, tls, headers };
  };
  // Once now, so a missing file or token shows at start rather than as a failing request.
  current();
  return { source, namespace, access: () => Promise.resolve().then(current) };
}

/** exec plugins and auth providers: client-node, imported on the first request. */
function delegatedKubeConfig(file: string, context: string, namespace: string | undefined): KubeConfig {
  let loading: Promise<ClientNodeKubeConfig> | undefined;
  const load = (): Promise<ClientNodeKubeConfig> =>
    import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      kc.setCurrentContext(context);
      return kc;
    });
  return {
    source: file,
    namespace,
    access: async () => {
      loading ??= load();
      // A failed load is retried on the next call rather than remembered.
      const kc = await loading.catch((error: unknown) => {
        loading = undefined;
        throw error;
      });
      return clientNodeAccess(kc);
    },
  };
}

/** client-go: a token file is re-read and wins while readable; `token` is the fallback. */
function bearerToken(user: UserEntry, source: string): string | undefined {
  if (!user.tokenFile) return user.token;
  let text: string;
  try {
    text = readFileSync(user.tokenFile, 'utf8').trim();
  } catch (error) {
    if (user.token) return user.token;
    throw new KubeConfigError(`cannot read ${user.tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, source, `${user.field}.tokenFile`);
  }
  if (text === '' && !user.token) throw new KubeConfigError(`${user.tokenFile} is empty`, source, `${user.field}.tokenFile`);
  return text || user.token;
}

/** Server, TLS and headers from a client-node KubeConfig (exec plugins and auth providers run here). */
export async function clientNodeAccess(kc: Pick<ClientNodeKubeConfig, 'getCurrentCluster' | 'applyToHTTPSOptions'>): Promise<ClusterAccess> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeConfigError('no current cluster');
  const options: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(options);
  const tls: ClusterTls = {};
  for (const key of ['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'] as const) {
    if (options[key] !== undefined) Object.assign(tls, { [key]: options[key] });
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = String(value);
  }
  return { server: cluster.server, tls, headers };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(raw: Record<string, unknown>, key: string, field: string, fail: Fail): string | undefined {
  const value = raw[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') return fail(field, 'expected a string');
  return value;
}
