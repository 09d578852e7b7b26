/**
 * Test hosts for health checks: one network namespace (`pxe-*`, ours alone) reached over a veth
 * pair, with one HTTP server (a Node process, gone when its parent goes) per documentation
 * address that a test stops and starts.
 * 198.51.100.240/28 only: .241 is our side, .242 upwards are hosts. Needs root; callers skip
 * loudly without it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

export const CAN_NETNS = process.getuid?.() === 0 && (() => {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A tiny HTTP server (200 on every path); Node keeps up with hundreds of probes a second. */
const SERVER = "const [address, port] = process.argv.slice(1); require('node:http').createServer((q, r) => r.end('ok')).listen(Number(port), address); process.stdin.on('close', () => process.exit()).resume();";

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface TestHosts {
  addresses: string[];
  port: number;
  stop(address: string): Promise<void>;
  start(address: string): Promise<void>;
  /** The host vanishes from the network (its address goes): probes time out instead of being refused. */
  unplug(address: string): void;
  plug(address: string): void;
  destroy(): Promise<void>;
}

async function listening(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function createTestHosts(count: number, port = 8080): Promise<TestHosts> {
  if (count < 1 || count > 13) throw new Error('1-13 hosts fit in 198.51.100.240/28');
  const id = randomBytes(2).toString('hex');
  const ns = `pxe-${id}`;
  const outer = `pxe${id}a`;
  const inner = `pxe${id}b`;
  const addresses = Array.from({ length: count }, (_, i) => `198.51.100.${String(242 + i)}`);
  const servers = new Map<string, ChildProcess>();
  const destroy = async (): Promise<void> => {
    for (const child of servers.values()) child.kill('SIGKILL');
    servers.clear();
    try {
      ip('link', 'del', outer);
    } catch {
      // already gone with the namespace
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      // never created
    }
    await Promise.resolve();
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
    ip('link', 'set', inner, 'netns', ns);
    ip('addr', 'add', '198.51.100.241/28', 'dev', outer);
    ip('link', 'set', outer, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', inner, 'up');
    for (const a of addresses) ip('-n', ns, 'addr', 'add', `${a}/28`, 'dev', inner);
  } catch (error) {
    await destroy();
    throw error;
  }
  const start = async (address: string): Promise<void> => {
    if (servers.has(address)) return;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, address, String(port)], { stdio: ['pipe', 'ignore', 'ignore'] });
    servers.set(address, child);
    const deadline = Date.now() + 10_000;
    while (!(await listening(address, port))) {
      if (Date.now() > deadline) throw new Error(`test host ${address} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (address: string): Promise<void> => {
    const child = servers.get(address);
    servers.delete(address);
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  try {
    for (const a of addresses) await start(a);
  } catch (error) {
    await destroy();
    throw error;
  }
  const unplug = (address: string): void => ip('-n', ns, 'addr', 'del', `${address}/28`, 'dev', inner);
  const plug = (address: string): void => ip('-n', ns, 'addr', 'add', `${address}/28`, 'dev', inner);
  return { addresses, port, start, stop, unplug, plug, destroy };
}
