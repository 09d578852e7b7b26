/** The kubeconfig loader: which file, which fields, and errors that name them. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { KubeConfigError, loadKubeConfig, type KubeConfig } from '../../src/kube/kubeconfig.js';

let dir = '';

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-kubeconfig-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';

function write(path: string, content: string): string {
  const full = join(dir, path);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(full, content);
  return full;
}

interface Parts {
  cluster?: Record<string, unknown>;
  user?: Record<string, unknown>;
  context?: Record<string, unknown>;
  currentContext?: string;
}

/** A kubeconfig with one context `c`, cluster `k` and user `u`, as JSON (a YAML subset) or YAML. */
function kubeconfig(parts: Parts = {}, path = 'config', yaml = false): string {
  const document = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': parts.currentContext ?? 'c',
    clusters: [{ name: 'k', cluster: { server: 'https://192.0.2.10:6443', ...parts.cluster } }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u', ...parts.context } }],
    users: [{ name: 'u', user: parts.user ?? {} }],
  };
  const text = yaml ? stringify(document) : JSON.stringify(document);
  return write(path, text);
}

async function access(kc: KubeConfig): Promise<{ server: string; ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean; servername?: string; authorization?: string }> {
  const { server, tls, headers } = await kc.access();
  const text = (v: unknown): string | undefined => (Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'string' ? v : undefined);
  return {
    server,
    ...(tls.ca !== undefined ? { ca: text(tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: text(tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: text(tls.key) } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    ...(headers.authorization !== undefined ? { authorization: headers.authorization } : {}),
  };
}

function errorOf(fn: () => unknown): KubeConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof KubeConfigError) return error;
    throw error;
  }
  throw new Error('expected a KubeConfigError');
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('kubeconfig fields', () => {
  it('reads the CA and client certificate from files relative to the kubeconfig, in YAML', async () => {
    write('kube/pki/ca.crt', CA);
    write('kube/pki/admin.crt', 'cert');
    write('kube/pki/admin.key', 'key');
    const path = kubeconfig({ cluster: { 'certificate-authority': 'pki/ca.crt' }, user: { 'client-certificate': 'pki/admin.crt', 'client-key': 'pki/admin.key' } }, 'kube/config', true);
    expect(await access(loadKubeConfig(path, {}))).toEqual({ server: 'https://192.0.2.10:6443', ca: CA, cert: 'cert', key: 'key', rejectUnauthorized: true });
  });

  it('decodes the -data fields, which win over the file fields', async () => {
    const path = kubeconfig({
      cluster: { 'certificate-authority-data': b64(CA), 'certificate-authority': 'missing.crt', 'tls-server-name': 'kubernetes.default' },
      user: { 'client-certificate-data': b64('cert'), 'client-key-data': b64('key'), token: 'abc' },
    });
    expect(await access(loadKubeConfig(path, {}))).toEqual({
      server: 'https://192.0.2.10:6443',
      ca: CA,
      cert: 'cert',
      key: 'key',
      rejectUnauthorized: true,
      servername: 'kubernetes.default',
      authorization: 'Bearer abc',
    });
  });

  it('skips verification (and the CA) with insecure-skip-tls-verify, and sends basic auth', async () => {
    const path = kubeconfig({ cluster: { 'insecure-skip-tls-verify': true, 'certificate-authority': 'missing.crt' }, user: { username: 'admin', password: 's3cret' } });
    expect(await access(loadKubeConfig(path, {}))).toEqual({
      server: 'https://192.0.2.10:6443',
      rejectUnauthorized: false,
      authorization: `Basic ${b64('admin:s3cret')}`,
    });
  });

  it('re-reads a token file on every access, falling back to token while it is unreadable', async () => {
    const tokenFile = write('token', 'first\n');
    const kc = loadKubeConfig(kubeconfig({ user: { tokenFile: 'token', token: 'static' } }), {});
    expect((await access(kc)).authorization).toBe('Bearer first');
    write('token', 'second');
    expect((await access(kc)).authorization).toBe('Bearer second');
    rmSync(tokenFile);
    expect((await access(kc)).authorization).toBe('Bearer static');
  });

  it('authenticates a user without credentials with nothing, and takes the context namespace', async () => {
    const kc = loadKubeConfig(kubeconfig({ context: { namespace: 'team-a' } }), {});
    expect(await access(kc)).toEqual({ server: 'https://192.0.2.10:6443', rejectUnauthorized: true });
    expect(kc.namespace).toBe('team-a');
  });

  it.each([
    ['a missing context', { currentContext: 'nope' }, 'current-context: context "nope" not found (contexts: c)'],
    ['an unset current-context', { currentContext: '' }, 'current-context: not set'],
    ['a missing cluster', { context: { cluster: 'other' } }, 'contexts[c].context.cluster: cluster "other" not found (clusters: k)'],
    ['a missing user', { context: { user: 'nobody' } }, 'contexts[c].context.user: user "nobody" not found (users: u)'],
    ['a server that is no URL', { cluster: { server: 'localhost:6443' } }, 'clusters[k].cluster.server: localhost:6443: expected an http(s) URL'],
    ['a certificate without its key', { user: { 'client-certificate-data': b64('cert') } }, 'users[u].user.client-key: not set (a client certificate needs its key and the key its certificate)'],
    ['an unreadable CA file', { cluster: { 'certificate-authority': 'absent.crt' } }, 'clusters[k].cluster.certificate-authority: cannot read DIR/absent.crt: ENOENT'],
    ['an unreadable token file without a token', { user: { tokenFile: 'absent' } }, 'users[u].user.tokenFile: cannot read DIR/absent: ENOENT'],
    ['impersonation', { user: { token: 't', as: 'admin' } }, 'users[u].user.as: impersonation is not supported'],
    ['a proxy', { cluster: { 'proxy-url': 'http://192.0.2.1:3128' } }, 'clusters[k].cluster.proxy-url: proxies are not supported'],
  ] as const)('rejects %s at load, naming the file and field', (_name, parts, message) => {
    const path = kubeconfig(parts);
    const error = errorOf(() => loadKubeConfig(path, {}));
    expect(error.message).toBe(`kubeconfig ${path}: ${message.replace('DIR', dir)}`);
    expect(error.source).toBe(path);
  });

  it('reads YAML written in flow style, which starts like JSON but is not', async () => {
    const path = write('flow', '{apiVersion: v1, kind: Config, current-context: c, clusters: [{name: k, cluster: {server: "https://192.0.2.10:6443"}}], contexts: [{name: c, context: {cluster: k, user: u}}], users: [{name: u, user: {token: abc}}]}\n');
    expect(await access(loadKubeConfig(path, {}))).toEqual({ server: 'https://192.0.2.10:6443', rejectUnauthorized: true, authorization: 'Bearer abc' });
  });

  it('rejects an unreadable file and YAML that does not parse', () => {
    expect(errorOf(() => loadKubeConfig(join(dir, 'absent'), {})).message).toBe(`kubeconfig ${join(dir, 'absent')}: cannot read: ENOENT`);
    const broken = write('broken', 'clusters: [\n');
    expect(errorOf(() => loadKubeConfig(broken, {})).message).toMatch(new RegExp(`^kubeconfig ${broken}: not valid YAML: `));
    const brokenJson = write('broken.json', '{"clusters": [\n');
    expect(errorOf(() => loadKubeConfig(brokenJson, {})).message).toMatch(new RegExp(`^kubeconfig ${brokenJson}: not valid YAML: `));
  });
});

describe('which kubeconfig', () => {
  function serviceAccount(token: string): string {
    const sa = join(dir, 'sa');
    write('sa/token', token);
    write('sa/ca.crt', CA);
    write('sa/namespace', 'portico-system\n');
    return sa;
  }
  const inCluster = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };

  it('in a cluster: the service account, its token re-read as the kubelet rotates it', async () => {
    const kc = loadKubeConfig(undefined, inCluster, { serviceAccountDir: serviceAccount('one\n'), home: dir });
    expect(kc.source).toBe('in-cluster');
    expect(kc.namespace).toBe('portico-system');
    expect(await access(kc)).toEqual({ server: 'https://10.96.0.1:443', ca: CA, rejectUnauthorized: true, authorization: 'Bearer one' });
    write('sa/token', 'two');
    expect((await access(kc)).authorization).toBe('Bearer two');
  });

  it('brackets an IPv6 service host', async () => {
    const kc = loadKubeConfig(undefined, { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' }, { serviceAccountDir: serviceAccount('t'), home: dir });
    expect((await kc.access()).server).toBe('https://[fd00:10:96::1]:443');
  });

  it('prefers an explicit path, then in-cluster, then the first $KUBECONFIG path, then ~/.kube/config', () => {
    const explicit = kubeconfig({}, 'explicit');
    const first = kubeconfig({}, 'first');
    const second = kubeconfig({}, 'second');
    const home = kubeconfig({}, 'home/.kube/config');
    const where = { serviceAccountDir: serviceAccount('t'), home: join(dir, 'home') };
    const env = { ...inCluster, KUBECONFIG: `${first}:${second}` };
    expect(loadKubeConfig(explicit, env, where).source).toBe(explicit);
    expect(loadKubeConfig(undefined, env, where).source).toBe('in-cluster');
    expect(loadKubeConfig(undefined, { KUBECONFIG: `:${first}:${second}` }, where).source).toBe(first);
    // Outside a pod the variables may be set while no token is mounted.
    expect(loadKubeConfig(undefined, inCluster, { ...where, serviceAccountDir: join(dir, 'none') }).source).toBe(home);
    expect(errorOf(() => loadKubeConfig(undefined, {}, { ...where, home: join(dir, 'nohome') })).message).toBe('no kubeconfig: pass --kubeconfig, run in a cluster, or set $KUBECONFIG');
  });
});

describe('exec plugins and auth providers', () => {
  it('hands the user to client-node, which runs the exec plugin', async () => {
    const credential = { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-plugin' } };
    const path = kubeconfig({
      cluster: { 'certificate-authority-data': b64(CA) },
      user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `process.stdout.write(${JSON.stringify(JSON.stringify(credential))})`], interactiveMode: 'Never' } },
    });
    const kc = loadKubeConfig(path, {});
    const { server, tls, headers } = await kc.access();
    expect({ server, ca: String(tls.ca), authorization: headers.authorization }).toEqual({ server: 'https://192.0.2.10:6443', ca: CA, authorization: 'Bearer from-plugin' });
  });

  it('still checks the cluster itself at load', () => {
    const path = kubeconfig({ cluster: { server: '' }, user: { exec: { command: 'true' } } });
    expect(errorOf(() => loadKubeConfig(path, {})).message).toBe(`kubeconfig ${path}: clusters[k].cluster.server: not set`);
  });
});
