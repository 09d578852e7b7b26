/**
 * A LAN in network namespaces for the speaker suites and the l2-failover benchmark: a bridge in
 * its own namespace, N "node" namespaces and one "client" namespace, each with `eth0` on the
 * bridge, in 192.0.2.0/24 and 2001:db8:2::/64. The host's own interfaces are never touched
 * (its uplink may itself be in 192.0.2.0/24): each node namespace reaches the test API server
 * (on host loopback) through a relay on the namespace's loopback and a Unix socket served by
 * the test process, since Unix sockets cross network namespaces. There is one socket per node,
 * so a test can cut one node off the API.
 * Everything is named with a per-run prefix and removed by `destroy()`, also after failures.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { packageRoot } from '../../../../../src/paths.js';

const run = promisify(execFile);

/** Speakers and relays still running when this process exits are killed with it. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
const repoRoot = packageRoot(import.meta.url);

/** Why the net suites cannot run here, or undefined when they can. */
export function netUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network-namespace suites need root (they create namespaces, veths and a bridge)';
  for (const tool of ['ip', 'arping', 'ping']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `network-namespace suites need \`${tool}\` (hack/net-tools.sh installs it)`;
  }
  return undefined;
}

export async function sh(args: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await run(args[0] ?? 'true', args.slice(1), { timeout: options.timeoutMs ?? 20_000 });
    return stdout;
  } catch (error) {
    if (options.allowFail) return (error as { stdout?: string }).stdout ?? '';
    throw error;
  }
}

export interface LanNode {
  name: string;
  netns: string;
  ipv4: string;
  ipv6: string;
  mac: string;
  /** The bridge-side end of the node's link: `ip link set ... down` cuts the node off the LAN. */
  bridgePort: string;
}

export interface Lan {
  id: string;
  bridgeNetns: string;
  nodes: LanNode[];
  client: LanNode;
  dir: string;
  /** Kubeconfig for a speaker on `node`, through its own forwarder. */
  kubeconfigFor(node: string): string;
  /** Stops (or restarts) the forwarder for `node`: that speaker loses the API. */
  cutApi(node: string, cut: boolean): void;
  destroy(): Promise<void>;
}

export async function createLan(options: { nodes: number; kubeconfigPath: string; prefix?: string }): Promise<Lan> {
  const id = `${options.prefix ?? 'spk'}${randomBytes(2).toString('hex')}`;
  const bridgeNetns = `${id}-lan`;
  const dir = await mkdtemp(join(tmpdir(), `${id}-`));
  const created: string[] = [];
  const forwarders = new Map<string, { server: Server; sockets: Set<Socket>; cut: boolean }>();
  const relays: ChildProcess[] = [];
  const destroy = async (): Promise<void> => {
    for (const relay of relays) relay.kill('SIGKILL');
    for (const f of forwarders.values()) {
      for (const s of f.sockets) s.destroy();
      f.server.close();
    }
    for (const netns of created.reverse()) await sh(['ip', 'netns', 'del', netns], { allowFail: true });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await sh(['ip', 'netns', 'add', bridgeNetns]);
    created.push(bridgeNetns);
    await sh(['ip', '-n', bridgeNetns, 'link', 'add', 'br0', 'type', 'bridge']);
    // No STP/forward delay: ports forward at once.
    await sh(['ip', '-n', bridgeNetns, 'link', 'set', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await sh(['ip', '-n', bridgeNetns, 'link', 'set', 'br0', 'up']);

    const member = async (name: string, index: number): Promise<LanNode> => {
      const netns = `${id}-${name}`;
      await sh(['ip', 'netns', 'add', netns]);
      created.push(netns);
      const port = `p-${name}`;
      await sh(['ip', '-n', bridgeNetns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await sh(['ip', '-n', bridgeNetns, 'link', 'set', port, 'master', 'br0', 'up']);
      const ipv4 = `192.0.2.${index}`;
      const ipv6 = `2001:db8:2::${index}`;
      await sh(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
      await sh(['ip', '-n', netns, 'addr', 'add', `${ipv4}/24`, 'dev', 'eth0']);
      await sh(['ip', '-n', netns, 'addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad']);
      await sh(['ip', '-n', netns, 'link', 'set', 'eth0', 'up']);
      const mac = (await readFileIn(netns, '/sys/class/net/eth0/address')).trim();
      // The Kubernetes node name: unique per run, so runs never share Node objects.
      return { name: netns, netns, ipv4, ipv6, mac, bridgePort: port };
    };
    const nodes: LanNode[] = [];
    for (let i = 0; i < options.nodes; i++) nodes.push(await member(`n${i + 1}`, 11 + i));
    const client = await member('c', 100);

    const kubeconfigText = await readFile(options.kubeconfigPath, 'utf8');
    const apiUrl = new URL(/server: (\S+)/.exec(kubeconfigText)?.[1] ?? 'https://127.0.0.1:6443');
    for (const node of nodes) {
      const sockets = new Set<Socket>();
      const entry = { server: createServer(), sockets, cut: false };
      entry.server.on('connection', (downstream) => {
        if (entry.cut) {
          downstream.destroy();
          return;
        }
        const upstream = connect(Number(apiUrl.port), apiUrl.hostname);
        sockets.add(downstream).add(upstream);
        const close = (): void => {
          downstream.destroy();
          upstream.destroy();
          sockets.delete(downstream);
          sockets.delete(upstream);
        };
        downstream.on('error', close).on('close', close).pipe(upstream);
        upstream.on('error', close).on('close', close).pipe(downstream);
      });
      const path = join(dir, `api-${node.name}.sock`);
      await new Promise<void>((resolve, reject) => {
        entry.server.once('error', reject);
        entry.server.listen(path, () => resolve());
      });
      forwarders.set(node.name, entry);
      const relay = spawn('ip', ['netns', 'exec', node.netns, process.execPath, '--import', 'tsx', join(repoRoot, 'test/providers/metallb-like/speaker/support/api-relay.ts'), apiUrl.port, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      relays.push(track(relay));
      await new Promise<void>((resolve, reject) => {
        relay.stdout.once('data', () => resolve());
        relay.once('exit', (code) => reject(new Error(`API relay in ${node.netns} exited with ${String(code)}`)));
      });
      // The same credentials and address as the test's own kubeconfig, inside the namespace.
      await writeFile(join(dir, `kubeconfig-${node.name}`), kubeconfigText);
    }
    return {
      id,
      bridgeNetns,
      nodes,
      client,
      dir,
      kubeconfigFor: (node) => join(dir, `kubeconfig-${node}`),
      cutApi: (node, cut) => {
        const entry = forwarders.get(node);
        if (!entry) return;
        entry.cut = cut;
        if (cut) for (const s of entry.sockets) s.destroy();
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}

async function readFileIn(netns: string, path: string): Promise<string> {
  return sh(['ip', 'netns', 'exec', netns, 'cat', path]);
}

export interface SpeakerProcess {
  node: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

/** A real `portico speaker` inside the node's namespace. */
export function startSpeaker(lan: Lan, node: LanNode, namespace: string, extraArgs: string[] = []): SpeakerProcess {
  const log = join(lan.dir, `speaker-${node.name}-${Date.now()}.log`);
  const out = createWriteStream(log);
  const child = spawn(
    'ip',
    ['netns', 'exec', node.netns, process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'speaker',
      `--kubeconfig=${lan.kubeconfigFor(node.name)}`, `--node-name=${node.name}`, `--namespace=${namespace}`, '--metrics-addr=0', ...extraArgs],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  track(child);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { node: node.name, child, log, exited };
}

export async function stopSpeaker(speaker: SpeakerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (speaker.child.exitCode !== null || speaker.child.signalCode !== null) return;
  speaker.child.kill(signal);
  const timer = setTimeout(() => speaker.child.kill('SIGKILL'), 5_000);
  await speaker.exited;
  clearTimeout(timer);
}

/** MACs that answered `arping` from the client for `ip` (empty: nobody answered). */
export async function arpingMacs(lan: Lan, ip: string, count = 2): Promise<string[]> {
  const out = await sh(['ip', 'netns', 'exec', lan.client.netns, 'arping', '-c', String(count), '-w', String(count + 1), '-I', 'eth0', ip], { allowFail: true, timeoutMs: 10_000 });
  const macs = new Set<string>();
  for (const match of out.matchAll(/reply from \S+ \[([0-9A-Fa-f:]{17})\]/g)) if (match[1]) macs.add(match[1].toLowerCase());
  return [...macs].sort();
}

/** The client's neighbour entry for `ip`: its MAC, or undefined when there is none (or it failed). */
export async function neighbourMac(lan: Lan, ip: string): Promise<string | undefined> {
  const out = await sh(['ip', '-n', lan.client.netns, 'neigh', 'show', ip, 'dev', 'eth0'], { allowFail: true });
  return /lladdr ([0-9a-f:]{17})/.exec(out)?.[1];
}

/** Makes the client's kernel resolve `ip` (one ping; the ping itself goes unanswered). */
export async function resolveFromClient(lan: Lan, ip: string): Promise<void> {
  await sh(['ip', 'netns', 'exec', lan.client.netns, 'ping', ip.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', ip], { allowFail: true, timeoutMs: 5_000 });
}

export async function flushNeighbours(lan: Lan): Promise<void> {
  await sh(['ip', '-n', lan.client.netns, 'neigh', 'flush', 'dev', 'eth0'], { allowFail: true });
}
