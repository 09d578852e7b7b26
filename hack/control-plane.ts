/**
 * Starts a local control plane — etcd, kube-apiserver and kube-controller-manager built by
 * hack/build-control-plane.sh — on free loopback ports, for tests and the demo.
 *
 * Everything lives in one temp directory; `stop()` kills the processes and removes it. A small
 * reaper process also does both if this process dies without calling `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { get as httpsGet } from 'node:https';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { generateCertificates } from './certificates.js';

const repoRoot = packageRoot(import.meta.url);

/** Dual-stack Service ranges: RFC 2544 benchmarking space and the IPv6 documentation prefix; never routed. */
export const SERVICE_CIDRS = '198.18.0.0/16,2001:db8:96::/108';

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  kubeconfigPath: string;
  /** The directory holding certificates, logs and data; removed by stop(). */
  dir: string;
  version: string;
  /** A kubectl of the same release, when built (KUBEBUILDER_ASSETS may lack one). */
  kubectl: string | undefined;
  /** Stops kube-apiserver only (etcd keeps the data), to test watch recovery. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Run kube-controller-manager (garbage collector, namespaces, EndpointSlices, service accounts). Default true. */
  controllerManager?: boolean;
  /** Progress lines go here; default stderr. */
  log?: (line: string) => void;
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags (tests use them to force compaction, for example). */
  apiserverArgs?: string[];
}

let binaries: Promise<string> | undefined;

/**
 * Runs the build script (a no-op when cached) and returns the directory with the binaries.
 * Once per process: later control planes reuse the answer instead of asking the module proxy again.
 */
export function ensureControlPlaneBinaries(log: (line: string) => void = defaultLog): Promise<string> {
  binaries ??= buildControlPlaneBinaries(log).catch((error: unknown) => {
    binaries = undefined;
    throw error;
  });
  return binaries;
}

async function buildControlPlaneBinaries(log: (line: string) => void): Promise<string> {
  const script = join(repoRoot, 'hack', 'build-control-plane.sh');
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) log(line);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`hack/build-control-plane.sh failed with exit code ${String(code)}`);
  const dir = out.trim().split('\n').at(-1);
  if (!dir || !existsSync(join(dir, 'kube-apiserver'))) throw new Error(`build script printed no binary directory: ${out}`);
  return dir;
}

export async function startControlPlane(options: StartOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? defaultLog;
  const bin = await ensureControlPlaneBinaries(log);
  const dir = await mkdtemp(join(tmpdir(), 'portico-cp-'));
  const children = new Map<string, ChildProcess>();
  const reaper = startReaper(dir);
  let apiserverArgs: string[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // The data is thrown away: no need to wait for graceful shutdowns.
    await Promise.all([...children.values()].map((child) => terminate(child, 'SIGKILL')));
    children.clear();
    reaper.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await generateCertificates(dir);
    const [etcdClient, etcdPeer, apiPort, kcmPort] = await freePorts(4);
    children.set(
      'etcd',
      launch(dir, 'etcd', join(bin, 'etcd'), [
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]),
    );
    reaper.stdin?.write(`${String(children.get('etcd')?.pid)}\n`);
    const server = `https://127.0.0.1:${apiPort}`;
    apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // The kubernetes Service would point at loopback, which the endpoint reconciler refuses.
      '--endpoint-reconciler-type=none',
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${join(dir, 'ca.crt')}`,
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--authorization-mode=Node,RBAC',
      `--service-cluster-ip-range=${SERVICE_CIDRS}`,
      '--service-node-port-range=30000-32767',
      '--disable-admission-plugins=ServiceAccount',
      '--watch-cache=true',
      '--max-requests-inflight=800',
      '--max-mutating-requests-inflight=400',
      '--v=0',
      ...(options.apiserverArgs ?? []),
    ];
    const startApiServer = async (): Promise<void> => {
      const child = launch(dir, 'kube-apiserver', join(bin, 'kube-apiserver'), apiserverArgs);
      children.set('kube-apiserver', child);
      reaper.stdin?.write(`${String(child.pid)}\n`);
      await waitReady(dir, server, child, options.readyTimeoutMs ?? 90_000);
    };
    log(`[control-plane] starting etcd + kube-apiserver in ${dir} ...`);
    const started = Date.now();
    await startApiServer();
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(server, dir, 'admin'));
    const version = await serverVersion(dir, server);

    const withKcm = (options.controllerManager ?? true) && existsSync(join(bin, 'kube-controller-manager'));
    if ((options.controllerManager ?? true) && !withKcm) log(`[control-plane] no kube-controller-manager in ${bin}: running without garbage collection, EndpointSlices and namespace deletion`);
    if (withKcm) {
      await writeFile(join(dir, 'kcm.kubeconfig'), kubeconfig(server, dir, 'kcm'));
      const kcm = launch(dir, 'kube-controller-manager', join(bin, 'kube-controller-manager'), [
        `--kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
        `--authentication-kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
        `--authorization-kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
        '--controllers=garbage-collector-controller,namespace-controller,endpointslice-controller,endpointslice-mirroring-controller,serviceaccount-controller,serviceaccount-token-controller',
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${join(dir, 'ca.crt')}`,
        // Each controller under its own ServiceAccount and bootstrap role, as real clusters run it.
        '--use-service-account-credentials=true',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        '--concurrent-gc-syncs=5',
        '--v=0',
      ]);
      children.set('kube-controller-manager', kcm);
      reaper.stdin?.write(`${String(kcm.pid)}\n`);
    }
    log(`[control-plane] ${version} ready at ${server} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    return {
      server,
      kubeconfigPath,
      dir,
      version,
      kubectl: existsSync(join(bin, 'kubectl')) ? join(bin, 'kubectl') : undefined,
      stop,
      startApiServer,
      stopApiServer: async () => {
        const child = children.get('kube-apiserver');
        children.delete('kube-apiserver');
        if (child) await terminate(child);
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function defaultLog(line: string): void {
  process.stderr.write(`${line}\n`);
}

function launch(dir: string, name: string, binary: string, args: string[]): ChildProcess {
  const logFile = createWriteStream(join(dir, `${name}.log`));
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // A missing or unrunnable binary shows up in the readiness wait, not as an unhandled crash.
  child.once('error', (error) => logFile.write(`failed to start ${binary}: ${error.message}\n`));
  child.stdout.pipe(logFile);
  child.stderr.pipe(logFile);
  return child;
}

/** `signal` (SIGTERM by default), then SIGKILL after 5 s. */
async function terminate(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A detached shell that outlives us only long enough to kill the pids we send it and remove the
 * directory once our process is gone — so a crashed test run leaves nothing behind.
 */
function startReaper(dir: string): ChildProcess {
  const script = `
    pids=""
    parent=${String(process.pid)}
    while true; do
      if read -t 1 pid; then pids="$pids $pid"; continue; fi
      kill -0 "$parent" 2>/dev/null || break
    done
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    sleep 3
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "${dir}"
  `;
  const reaper = spawn('bash', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  reaper.unref();
  return reaper;
}

/**
 * Ports are picked below the kernel's ephemeral range (32768-60999 by default): a port the
 * kernel hands out from that range is, by the time a child process binds it, as likely to be
 * some test's outgoing connection ("Address already in use").
 */
const PORT_BASE = 20_000;
const PORT_SPAN = 12_000;

/** Binds `port` on loopback (TCP, and UDP when asked); undefined when something holds it. */
async function holdPort(port: number, udp: boolean): Promise<(() => Promise<void>) | undefined> {
  const server = createServer();
  const tcp = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!tcp) return undefined;
  const closeTcp = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  if (!udp) return closeTcp;
  const socket = createSocket('udp4');
  const bound = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => resolve(true));
  });
  const closeUdp = (): Promise<void> => new Promise((resolve) => socket.close(() => resolve()));
  if (!bound) {
    await Promise.all([closeTcp(), closeUdp()]);
    return undefined;
  }
  return async () => {
    await Promise.all([closeTcp(), closeUdp()]);
  };
}

/** `count` distinct loopback ports nothing holds now (for TCP, and for UDP too with `udp`). */
export async function freePorts(count: number, options: { udp?: boolean } = {}): Promise<number[]> {
  const ports: number[] = [];
  const releases: (() => Promise<void>)[] = [];
  try {
    for (let attempt = 0; ports.length < count; attempt++) {
      if (attempt >= 500) throw new Error(`no ${String(count)} free ports in ${String(PORT_BASE)}-${String(PORT_BASE + PORT_SPAN - 1)}`);
      const port = PORT_BASE + randomInt(PORT_SPAN);
      if (ports.includes(port)) continue;
      const release = await holdPort(port, options.udp ?? false);
      if (release === undefined) continue;
      ports.push(port);
      releases.push(release);
    }
    return ports;
  } finally {
    await Promise.all(releases.map((release) => release()));
  }
}

function kubeconfig(server: string, dir: string, user: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority: ${join(dir, 'ca.crt')}
users:
- name: ${user}
  user:
    client-certificate: ${join(dir, `${user}.crt`)}
    client-key: ${join(dir, `${user}.key`)}
contexts:
- name: local
  context: { cluster: local, user: ${user} }
current-context: local
`;
}

async function getText(dir: string, url: string): Promise<string> {
  const [ca, cert, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(join(dir, f))));
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, cert, key, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function waitReady(dir: string, server: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const tail = (await readFile(join(dir, 'kube-apiserver.log'), 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`kube-apiserver exited with ${String(child.exitCode)}:\n${tail}`);
    }
    try {
      last = await getText(dir, `${server}/readyz`);
      if (last.trim() === 'ok') return;
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`kube-apiserver not ready after ${timeoutMs} ms: ${last}`);
}

async function serverVersion(dir: string, server: string): Promise<string> {
  const body = JSON.parse(await getText(dir, `${server}/version`)) as { gitVersion?: string };
  return body.gitVersion ?? 'unknown';
}
